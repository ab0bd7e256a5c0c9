"""The worker tasks of request metrics."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.kernel.metrics.sink import STORE_TASK
from dockyard.kernel.metrics.store import save_records
from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.registry import JobContext, Tasks

TASKS = Tasks()


@TASKS.batch(STORE_TASK)
async def store_requests(context: JobContext, jobs: Sequence[Job]) -> None:
    """Each job carries a batch of records; a batch of jobs is one insert."""
    records = [record for job in jobs for record in job.payload.get("records", [])]
    await save_records(context.resources["db"], records)
