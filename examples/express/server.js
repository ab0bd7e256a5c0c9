// An Express app as its community writes it: `npm start`, PORT from the environment.
const express = require("express");

const app = express();
app.get("/", (req, res) => res.json({
  greeting: process.env.GREETING || "Hello from Express",
  release: process.env.DOCKYARD_RELEASE || null,
}));
app.get("/healthz", (req, res) => res.send("ok"));

const server = app.listen(process.env.PORT || 3000, () => console.log("listening"));
process.on("SIGTERM", () => server.close());
