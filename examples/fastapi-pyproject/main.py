"""A FastAPI app as its community writes it: dependencies in pyproject.toml, served by uvicorn."""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def home() -> dict[str, str | None]:
    return {"greeting": os.environ.get("GREETING", "Hello from FastAPI"),
            "release": os.environ.get("DOCKYARD_RELEASE")}


@app.get("/healthz")
def healthz() -> str:
    return "ok"
