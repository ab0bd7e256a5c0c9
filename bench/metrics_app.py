"""The app the metrics benchmark serves: `uvicorn --factory metrics_app:build`."""

from fastapi import FastAPI

from dockyard.api.app import create_app
from dockyard.kernel.settings import Settings


def build() -> FastAPI:
    return create_app(Settings())
