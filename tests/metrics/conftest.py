"""Metrics fixtures: the Redis of the queue tests, and an app whose records can be traced."""

from __future__ import annotations

from tests.queue.conftest import redis_server, redis_url  # noqa: F401  (fixtures)
