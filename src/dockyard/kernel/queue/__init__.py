"""The job queue: Redis Streams with a transactional outbox behind every Redis."""

from dockyard.kernel.queue.breaker import BreakerState, CircuitBreaker
from dockyard.kernel.queue.jobs import DEFAULT_QUEUE, Delivery, Job, backoff_delay
from dockyard.kernel.queue.manager import EnqueueResult, QueueManager, QueueUnavailable
from dockyard.kernel.queue.outbox import DEFAULT_BROKER, add_event
from dockyard.kernel.queue.periodic import Periodic
from dockyard.kernel.queue.registry import JobContext, Task, Tasks

__all__ = [
    "DEFAULT_BROKER", "DEFAULT_QUEUE", "BreakerState", "CircuitBreaker", "Delivery",
    "EnqueueResult", "Job", "JobContext", "Periodic", "QueueManager", "QueueUnavailable",
    "Task", "Tasks", "add_event", "backoff_delay",
]
