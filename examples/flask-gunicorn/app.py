"""A Flask app as its community writes it: served by gunicorn, configured by environment."""

import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def home():
    return jsonify(greeting=os.environ.get("GREETING", "Hello from Flask"),
                   release=os.environ.get("DOCKYARD_RELEASE"))


@app.get("/healthz")
def healthz():
    return "ok"
