"""Request metrics of the apps Dockyard runs, as a node's agent counts them from its nginx and
the control plane stores them: buckets of a few seconds per (service, release), whose latency
histograms merge by adding counts (so servers, minutes and hours add up), and the host figures
an agent reports. Percentiles come from the histograms, never from raw requests."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

BUCKET_SECONDS = 10
# Upper bounds (ms) of the latency histogram's buckets; one more bucket counts everything over
# the last bound.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000)
HISTOGRAM_SIZE = len(LATENCY_BOUNDS_MS) + 1


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestBucket(Record):
    """The requests of one service answered by one release in one bucket of time, on one node.
    `release` is the deployment id's first 8 characters of the container that answered;
    "" when no container answered (the switch had none, or every one failed)."""

    service: str
    release: str
    start: int = Field(description="Epoch seconds, a multiple of BUCKET_SECONDS")
    requests: int = Field(ge=0)
    status_2xx: int = Field(default=0, ge=0, description="1xx and 2xx")
    status_3xx: int = Field(default=0, ge=0)
    status_4xx: int = Field(default=0, ge=0)
    status_5xx: int = Field(default=0, ge=0)
    bytes_sent: int = Field(default=0, ge=0)
    latency: list[int] = Field(min_length=HISTOGRAM_SIZE, max_length=HISTOGRAM_SIZE,
                               description="Request counts per LATENCY_BOUNDS_MS bucket")

    def merged(self, other: RequestBucket) -> RequestBucket:
        """The two buckets' counts added (their keys are this one's)."""
        return self.model_copy(update={
            "requests": self.requests + other.requests,
            "status_2xx": self.status_2xx + other.status_2xx,
            "status_3xx": self.status_3xx + other.status_3xx,
            "status_4xx": self.status_4xx + other.status_4xx,
            "status_5xx": self.status_5xx + other.status_5xx,
            "bytes_sent": self.bytes_sent + other.bytes_sent,
            "latency": add_histograms(self.latency, other.latency)})


class RequestMetricsPage(Record):
    """An agent's closed buckets after a cursor. Pass `cursor` as `after` for the next page;
    `lost` counts buckets dropped since the agent started because nobody collected them in
    time (its buffer is bounded)."""

    cursor: int
    buckets: list[RequestBucket]
    lost: int = 0


class ServiceUsage(Record):
    """What one service's containers use on a node right now."""

    service: str
    containers: int
    cpu_percent: float = Field(description="Of one CPU: two busy cores are 200")
    memory_bytes: int


class FileSystemUsage(Record):
    """A file system the agent writes to; `roles`: what it holds there (`docker`: Docker's
    data root, `agent`: the agent's state, logs and nginx files)."""

    roles: list[str]
    path: str
    total_bytes: int
    free_bytes: int = Field(description="What unprivileged writers may still use")

    @property
    def free_fraction(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 1.0


class HostStats(Record):
    """A node's health figures at `at` (epoch seconds)."""

    at: float
    cpus: int
    cpu_percent: float = Field(description="Of the whole machine, 0..100")
    memory_total_bytes: int
    memory_used_bytes: int
    disk_total_bytes: int = Field(description="Of the file system holding Docker's data")
    disk_used_bytes: int
    containers_running: int
    containers_stopped: int
    services: list[ServiceUsage] = []
    file_systems: list[FileSystemUsage] = []

    @property
    def disk_used_fraction(self) -> float:
        return self.disk_used_bytes / self.disk_total_bytes if self.disk_total_bytes else 0.0

    @property
    def fullest_used_fraction(self) -> float:
        """Of Docker's file system and those the agent writes to, the most used."""
        return max([self.disk_used_fraction,
                    *(1 - found.free_fraction for found in self.file_systems)])


def empty_histogram() -> list[int]:
    return [0] * HISTOGRAM_SIZE


def add_histograms(left: Sequence[int], right: Sequence[int]) -> list[int]:
    return [a + b for a, b in zip(left, right, strict=True)]


def histogram_index(latency_ms: float) -> int:
    """The bucket a request of `latency_ms` is counted in."""
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency_ms <= bound:
            return index
    return len(LATENCY_BOUNDS_MS)


def percentile(histogram: Sequence[int], fraction: float) -> float | None:
    """The latency (ms) under which `fraction` (0..1) of the requests fell, interpolated inside
    its bucket; None without requests. Over the last bound it answers the last bound."""
    total = sum(histogram)
    if not total:
        return None
    wanted, seen = fraction * total, 0
    for index, count in enumerate(histogram):
        if count and seen + count >= wanted:
            return _within(index, (wanted - seen) / count)
        seen += count
    return LATENCY_BOUNDS_MS[-1]


def _within(index: int, share: float) -> float:
    if index >= len(LATENCY_BOUNDS_MS):
        return LATENCY_BOUNDS_MS[-1]
    low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
    return low + (LATENCY_BOUNDS_MS[index] - low) * share
