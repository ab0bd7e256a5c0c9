"""A notes app as people write it: Flask, Postgres through psycopg, Redis through redis-py,
every address from the environment Dockyard injects (DATABASE_URL, REDIS_URL,
REDIS_LOGS_URL)."""

import os

import psycopg
import redis
from flask import Flask, jsonify, request

app = Flask(__name__)
TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}


def database() -> psycopg.Connection:
    connection = psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5)
    connection.execute("CREATE TABLE IF NOT EXISTS notes (name text PRIMARY KEY, body text)")
    return connection


def cache(variable: str = "REDIS_URL") -> redis.Redis:
    return redis.Redis.from_url(os.environ[variable], **TIMEOUTS)


@app.get("/")
def home():
    return jsonify(greeting="Hello from notes",
                   linked=sorted(key for key in os.environ if key.endswith("_URL")))


@app.post("/notes/<name>")
def write(name: str):
    text = request.get_data(as_text=True)
    with database() as connection:
        connection.execute("INSERT INTO notes VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                           "SET body = excluded.body", (name, text))
    cache().set(f"note:{name}", text)
    return jsonify(saved=name)


@app.get("/notes/<name>")
def read(name: str):
    with database() as connection:
        row = connection.execute("SELECT body FROM notes WHERE name = %s", (name,)).fetchone()
    cached = cache().get(f"note:{name}")
    return jsonify(database=row[0] if row else None,
                   cache=cached.decode() if cached else None)


@app.post("/log")
def log():
    """Writes to the Redis kept for logs; the others do not depend on it."""
    try:
        length = cache("REDIS_LOGS_URL").rpush("log", request.get_data(as_text=True))
    except redis.RedisError as error:
        return jsonify(error=type(error).__name__), 503
    return jsonify(length=length)


@app.errorhandler(Exception)
def failed(error: Exception):
    """What went wrong, said to the caller too (a demo app: no secrets in these messages)."""
    app.logger.exception("request failed")
    return jsonify(error=f"{type(error).__name__}: {error}"), 500
