"""Read the lines appended to a log file, as `tail -F` does: from a kept position, through
truncation (read again from the start) and replacement (the old file read to its end first)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

READ_BYTES = 4 * 1024**2
MAX_LINE_BYTES = 64 * 1024
GRACE_READS = 3  # empty reads of a replaced file before the new one is read


@dataclass(frozen=True)
class Position:
    inode: int
    offset: int


class LogTail:
    """Whole lines only (a line is kept until its newline comes); a line longer than
    MAX_LINE_BYTES is cut into pieces (which will not parse). A replaced file is read until
    it gave nothing GRACE_READS times in a row (its writer may still flush into it).
    `start` may be in one of the `rotated` files (the position kept before a rotation): that
    one is read on from there first."""

    def __init__(self, path: Path, start: Position | None = None,
                 rotated: Sequence[Path] = ()) -> None:
        self.path = path
        self.rotated = rotated
        self._start = start
        self._handle: BinaryIO | None = None
        self._partial = b""
        self._idle = 0

    @property
    def position(self) -> Position | None:
        if self._handle is None:
            return None
        return Position(os.fstat(self._handle.fileno()).st_ino,
                        self._handle.tell() - len(self._partial))

    def size(self) -> int:
        """The size of the file being read (0 when none is open)."""
        return os.fstat(self._handle.fileno()).st_size if self._handle else 0

    def reading_current(self) -> bool:
        """Whether the file being read is the one at the path."""
        position = self.position
        return position is not None and self._inode_at_path() == position.inode

    def read(self) -> list[bytes]:
        """The complete lines appended since the last read (at most READ_BYTES' worth)."""
        if self._handle is None and not self._open():
            return []
        assert self._handle is not None
        if os.fstat(self._handle.fileno()).st_size < self._handle.tell():
            self._handle.seek(0)
            self._partial = b""
        chunk = self._handle.read(READ_BYTES)
        if not chunk:
            self._after_end()
            return []
        self._idle = 0
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        if len(self._partial) > MAX_LINE_BYTES:
            lines.append(self._partial)
            self._partial = b""
        return lines

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._partial = b""

    def _open(self) -> bool:
        start, self._start = self._start, None
        if start is not None and self._resume(start):
            return True
        try:
            self._handle = self.path.open("rb")
        except FileNotFoundError:
            return False
        return True

    def _resume(self, start: Position) -> bool:
        """Open the file of `start` (the live one or a rotated one) at its offset."""
        for candidate in (self.path, *self.rotated):
            try:
                handle = candidate.open("rb")
            except FileNotFoundError:
                continue
            if os.fstat(handle.fileno()).st_ino == start.inode:
                handle.seek(start.offset)
                self._handle = handle
                return True
            handle.close()
        return False

    def _after_end(self) -> None:
        """At the end of the file: move on to the file now at the path once this one was
        replaced and stayed silent."""
        if self.reading_current():
            self._idle = 0
            return
        self._idle += 1
        if self._idle >= GRACE_READS:
            self._idle = 0
            self.close()

    def _inode_at_path(self) -> int | None:
        try:
            return self.path.stat().st_ino
        except FileNotFoundError:
            return None
