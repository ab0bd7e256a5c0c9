import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Built into the Python package, which serves it at `/` (src/dockyard/api/dashboard.py).
export default defineConfig({
  plugins: [svelte()],
  build: { outDir: "../src/dockyard/dashboard", emptyOutDir: true, target: "es2022" },
  server: { proxy: { "/api": "http://127.0.0.1:8420" } },  // `dockyard up`'s API
});
