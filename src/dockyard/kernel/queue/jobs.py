"""A job as it travels: through Redis as one JSON field, through the outbox as a row."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dockyard.kernel.context import current_request_id

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class Job:
    task: str
    payload: dict[str, Any]
    queue: str = DEFAULT_QUEUE
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    key: str | None = None  # jobs with the same key are delivered in the order enqueued
    idempotency_key: str = ""  # defaults to the id: a job relayed twice is still one job
    request_id: str | None = field(default_factory=current_request_id)
    attempt: int = 1
    enqueued_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.idempotency_key:
            object.__setattr__(self, "idempotency_key", self.id)

    def encode(self) -> str:
        fields = {name: getattr(self, name) for name in _FIELDS}  # asdict() deep-copies: slow
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def decode(cls, text: str | bytes) -> Job:
        return cls(**json.loads(text))

    def next_attempt(self) -> Job:
        return replace(self, attempt=self.attempt + 1)


_FIELDS = tuple(f.name for f in fields(Job))


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 300.0, jitter: float = 0.0
) -> float:
    """Seconds to wait before retrying after failed `attempt` (1-based): base * 2^(attempt-1),
    capped, then spread by up to +/- `jitter` (a fraction) so retries do not stampede."""
    delay = min(cap, base * 2 ** (attempt - 1))
    if jitter:
        delay *= 1 + jitter * (2 * random.random() - 1)  # noqa: S311
    return float(delay)


@dataclass(frozen=True, eq=False)
class Delivery:
    """A job handed to a worker, with the handle its source needs to settle it."""

    job: Job
    handle: str  # a stream entry id, or an outbox row id
