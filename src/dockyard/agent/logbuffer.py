"""The agent's log buffer: stdout and stderr of the containers it manages, copied from Docker
into a bounded on-disk journal with a sequence number per line, so the control plane can pull
every line after the last one it stored. The journal is two segments of at most half the
bound each; when the newer fills, the older is dropped (the bound is what an outage can hold)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dockyard.agent import commands as cmd
from dockyard.agent.commands import MANAGED_LABEL, SERVICE_LABEL, EngineCall
from dockyard.agent.processes import ONE_OFF_LABEL, OOM_GAP_NANOS, memory_kills
from dockyard.agent.runtime import DockerRuntime, EngineError

STREAMS = ("stdout", "stderr")
EXIT_STREAM = "exit"  # lines the agent writes when a container ends: its exit code, OOM
EXITS_CURSOR = "exits"
MAX_LINE_CHARS = 16 * 1024
DEFAULT_LOG_BUFFER_BYTES = 64 * 1024**2


class LogEntry(BaseModel):
    seq: int
    container: str
    service: str
    labels: dict[str, str] = Field(default_factory=dict)
    stream: str
    time: datetime
    line: str


class LogPage(BaseModel):
    """Entries after a cursor; `first_seq` is the oldest still buffered (a gap shows lost lines)."""

    entries: list[LogEntry]
    first_seq: int
    last_seq: int


def _parse_line(raw: str) -> tuple[datetime, str] | None:
    stamp, _, text = raw.partition(" ")
    try:
        return datetime.fromisoformat(stamp), text[:MAX_LINE_CHARS]
    except ValueError:
        return None


def exit_entries(events: list[dict[str, Any]]) -> list[LogEntry]:
    """A line for each `die` event of a service's container (one-off runs left out), saying
    its exit code and whether the kernel killed it for memory."""
    killed = memory_kills(events)
    return [_exit_entry(event, (event.get("Actor") or {}).get("Attributes") or {}, at in killed)
            for at, event in enumerate(events) if event.get("Action") == "die"
            and ONE_OFF_LABEL not in ((event.get("Actor") or {}).get("Attributes") or {})]


def _exit_entry(event: dict[str, Any], actor: dict[str, str], oom: bool) -> LogEntry:
    code = actor.get("exitCode", "?")
    why = " (killed by the kernel for using more than its memory limit: OOM)" if oom else ""
    moment = datetime.fromtimestamp(int(event.get("timeNano", 0)) / 1e9, UTC)
    return LogEntry(seq=0, container=actor.get("name", ""),
                    service=actor.get(SERVICE_LABEL, ""), stream=EXIT_STREAM, time=moment,
                    labels={k: v for k, v in actor.items() if k.startswith("dockyard.")},
                    line=f"process exited with code {code}{why}")


def _seq(record: bytes) -> int:
    """The sequence number at a record's head (`{"seq":N,...`), read without parsing it all."""
    return int(record[7:record.index(b",")])


@dataclass(frozen=True)
class _Mark:
    """Where the line after `seq` starts: `offset` in the segment whose first line is `segment`."""

    segment: int
    offset: int
    seq: int


class LogBuffer:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = max(max_bytes // 2, 1)
        directory.mkdir(parents=True, exist_ok=True)
        self._older, self._newer = directory / "journal.0", directory / "journal.1"
        self._cursors_file = directory / "cursors.json"
        self._cursors: dict[str, str] = self._load_cursors()
        self._next_seq = self._last_seq() + 1
        self._mark: _Mark | None = None

    def _load_cursors(self) -> dict[str, str]:
        if not self._cursors_file.exists():
            return {}
        found: dict[str, str] = json.loads(self._cursors_file.read_text())
        return found

    def _segments(self) -> list[tuple[Path, int]]:
        """Each segment that holds a line, oldest first, with the sequence number of its first
        line (which names the segment: the file's inode may be reused after a drop)."""
        found = []
        for segment in (self._older, self._newer):
            with contextlib.suppress(FileNotFoundError), segment.open("rb") as handle:
                if head := handle.readline():
                    found.append((segment, _seq(head)))
        return found

    def _records(self, after: int = 0, mark: _Mark | None = None
                 ) -> Iterator[tuple[int, bytes, int, int]]:
        """(sequence number, JSON, its segment's first sequence number, the offset after it)
        of the buffered lines, oldest first: from `mark` on while its segment is buffered,
        else from the first segment that can hold a line after `after`."""
        segments = self._segments()
        heads = [head for _, head in segments]
        at_mark = mark is not None and mark.segment in heads
        start = heads.index(mark.segment) if mark and at_mark else max(
            (index for index, head in enumerate(heads) if head <= after + 1), default=0)
        for segment, head in segments[start:]:
            offset = mark.offset if mark and at_mark and head == mark.segment else 0
            with segment.open("rb") as handle:
                handle.seek(offset)
                for line in handle:
                    offset += len(line)
                    yield _seq(line), line, head, offset

    def _last_seq(self) -> int:
        return max((seq for seq, *_ in self._records()), default=0)

    def read(self, after: int, limit: int) -> LogPage:
        """Up to `limit` lines after `after`; a reader that goes on where the last page ended
        starts at that page's end instead of scanning the journal."""
        mark = self._mark if self._mark and self._mark.seq == after else None
        entries: list[LogEntry] = []
        last: tuple[int, bytes, int, int] | None = None
        for last in self._records(after, mark):
            if last[0] > after:
                entries.append(LogEntry.model_validate_json(last[1]))
                if len(entries) == limit:
                    break
        if last is not None:
            self._mark = _Mark(segment=last[2], offset=last[3], seq=last[0])
        first = next((head for _, head in self._segments()), self._next_seq)
        return LogPage(entries=entries, first_seq=first, last_seq=self._next_seq - 1)

    @property
    def newest_seq(self) -> int:
        return self._next_seq - 1

    def append(self, entries: list[LogEntry]) -> None:
        pending = iter(entries)
        while chunk := self._fill_segment(pending):
            if chunk >= self.segment_bytes:
                self._newer.replace(self._older)

    def _fill_segment(self, pending: Iterator[LogEntry]) -> int:
        """Write entries until the newer segment is full; returns its size, 0 when none left."""
        size = self._newer.stat().st_size if self._newer.exists() else 0
        wrote = False
        with self._newer.open("a") as handle:
            for entry in pending:
                size += handle.write(entry.model_dump_json() + "\n")
                wrote = True
                if size >= self.segment_bytes:
                    break
        return size if wrote else 0

    async def sync(self, runtime: DockerRuntime) -> int:
        """Copy the new lines of every managed container, and a line for each container that
        ended since the last sync; returns how many were copied."""
        containers = await runtime.run(EngineCall("containers", {
            "all": True, "filters": {"label": [f"{MANAGED_LABEL}=true"]}}))
        names = [raw["Names"][0].lstrip("/") for raw in containers]
        self._forget_cursors_but(set(names))
        copied = 0
        for name, raw in zip(names, containers, strict=True):
            copied += await self.sync_container(runtime, name, raw.get("Labels") or {})
        return copied + await self.sync_exits(runtime)

    def _forget_cursors_but(self, names: set[str]) -> None:
        """Drop the cursors of containers that no longer exist (their logs went with them)."""
        for key in [k for k in self._cursors if k != EXITS_CURSOR]:
            if key.rpartition("/")[0] not in names:
                del self._cursors[key]

    async def sync_exits(self, runtime: DockerRuntime) -> int:
        """One `exit` line per container that ended (crashed, was killed for memory, or
        was stopped) up to a moment OOM_GAP_NANOS ago, so a late `oom` event still names its
        exit; the first call only sets the cursor."""
        until = time.time() - OOM_GAP_NANOS / 1e9
        since = float(self._cursors.get(EXITS_CURSOR, until))
        events = [e async for e in runtime.stream(
            cmd.managed_exits(since - OOM_GAP_NANOS / 1e9, time.time()))]
        entries = [entry for entry in exit_entries(events)
                   if since <= entry.time.timestamp() < until]
        for entry in entries:
            entry.seq, self._next_seq = self._next_seq, self._next_seq + 1
        self.append(entries)
        self._cursors[EXITS_CURSOR] = repr(max(since, until))
        self._save_cursors()
        return len(entries)

    async def sync_container(self, runtime: DockerRuntime, name: str,
                             labels: dict[str, str]) -> int:
        entries: list[LogEntry] = []
        for stream in STREAMS:
            entries += await self._new_lines(runtime, name, labels, stream)
        entries.sort(key=lambda entry: entry.time)
        for entry in entries:
            entry.seq, self._next_seq = self._next_seq, self._next_seq + 1
        self.append(entries)
        self._save_cursors()
        return len(entries)

    async def _new_lines(self, runtime: DockerRuntime, name: str, labels: dict[str, str],
                         stream: str) -> list[LogEntry]:
        key = f"{name}/{stream}"
        cursor = self._cursors.get(key)
        since = datetime.fromisoformat(cursor).timestamp() if cursor else None
        try:
            raw: bytes = await runtime.run(EngineCall("logs", {
                "container": name, "stdout": stream == "stdout",
                "stderr": stream == "stderr", "timestamps": True,
                **({"since": since} if since else {})}))
        except EngineError:
            return []
        entries = self._entries(raw, name, labels, stream, cursor)
        if entries:
            self._cursors[key] = entries[-1].time.isoformat()
        return entries

    @staticmethod
    def _entries(raw: bytes, name: str, labels: dict[str, str], stream: str,
                 cursor: str | None) -> list[LogEntry]:
        after = datetime.fromisoformat(cursor) if cursor else None
        ours = {key: value for key, value in labels.items() if key.startswith("dockyard.")}
        found = []
        for parsed in map(_parse_line, raw.decode(errors="replace").splitlines()):
            if parsed is None or (after is not None and parsed[0] <= after):
                continue
            found.append(LogEntry(seq=0, container=name, service=labels.get(SERVICE_LABEL, ""),
                                  labels=ours, stream=stream, time=parsed[0], line=parsed[1]))
        return found

    def _save_cursors(self) -> None:
        temporary = self._cursors_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._cursors))
        temporary.replace(self._cursors_file)
