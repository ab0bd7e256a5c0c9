"""Every Redis key and group name the queue uses, in one place (like arq's constants)."""

from __future__ import annotations

PREFIX = "dockyard"
GROUP = "dockyard-workers"
JOB_FIELD = "job"


def stream(queue: str) -> str:
    """The stream jobs of `queue` wait in until a worker acknowledges them."""
    return f"{PREFIX}:queue:{queue}"


def delayed(queue: str) -> str:
    """Sorted set of jobs (and retries) due later, scored by due time in epoch milliseconds."""
    return f"{PREFIX}:delayed:{queue}"


def dead(queue: str) -> str:
    """The dead-letter stream: jobs that used up their attempts."""
    return f"{PREFIX}:dead:{queue}"


def idempotency(queue: str, key: str) -> str:
    """Marks `key` as enqueued on `queue`, so a second enqueue with it is a no-op."""
    return f"{PREFIX}:idem:{queue}:{key}"
