"""What a backup's verification compares, as pure functions: the tables a Postgres dump's
table of contents (`pg_restore -l`) names, the rows its COPY blocks hold, the tables and
counts a scratch restore has; a Redis snapshot's key count."""

from __future__ import annotations

import re
from dataclasses import dataclass

Table = tuple[str, str]  # schema, name (as stored, unquoted)

# every ordinary table with its exact row count, one per line: schema, name, count
TABLE_COUNTS_SQL = (
    "SELECT table_schema, table_name, (xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]"
    "::text FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema "
    "NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2")
_TOC_TABLE = re.compile(r"\d+; 1259 \d+ TABLE (\S+) (.+) (\S+)")  # 1259: pg_class
_IDENTIFIER = r'"(?:[^"]|"")*"|[^."\s]+'
_COPY = re.compile(rf"COPY ({_IDENTIFIER})\.({_IDENTIFIER}) (?:\(.*\) )?FROM stdin;")
_COPY_END = b"\\."


@dataclass(frozen=True)
class Verdict:
    good: bool
    text: str


def toc_tables(toc: str) -> set[Table]:
    """The tables a dump's table of contents creates."""
    found = (_TOC_TABLE.fullmatch(line) for line in toc.splitlines())
    return {(match[1], match[2]) for match in found if match}


def unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


class CopyCounter:
    """Counts the data lines of each COPY block in `pg_restore --data-only` output, fed in
    chunks (text-format COPY escapes newlines in values, so a line is a row)."""

    def __init__(self) -> None:
        self._rest = b""
        self._table: Table | None = None
        self.rows: dict[Table, int] = {}

    def feed(self, chunk: bytes) -> None:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if self._table is not None:
            if line == _COPY_END:
                self._table = None
            else:
                self.rows[self._table] += 1
        elif match := _COPY.fullmatch(line.decode(errors="replace")):
            self._table = (unquote(match[1]), unquote(match[2]))
            self.rows.setdefault(self._table, 0)

    def finish(self) -> dict[Table, int]:
        if self._rest:
            self._line(self._rest)
        return self.rows


def restored_counts(listing: str) -> dict[Table, int]:
    """`TABLE_COUNTS_SQL`'s answer (psql -A -t -F TAB) as a mapping."""
    rows = [line.split("\t") for line in listing.splitlines() if line.count("\t") >= 2]
    return {(row[0], "\t".join(row[1:-1])): int(row[-1]) for row in rows}


def _name(table: Table) -> str:
    return f"{table[0]}.{table[1]}"


def _names(tables: set[Table]) -> str:
    return ", ".join(sorted(_name(t) for t in tables))


def postgres_verdict(toc: set[Table], dumped: dict[Table, int], restored: dict[Table, int]
                     ) -> Verdict:
    """Good when the restore has exactly the dump's tables, each with the dump's rows."""
    problems = []
    if missing := toc - restored.keys():
        problems.append(f"tables missing after restore: {_names(missing)}")
    if extra := restored.keys() - toc:
        problems.append(f"tables not in the dump: {_names(extra)}")
    problems += [f"{_name(t)}: {dumped.get(t, 0)} rows dumped, {restored[t]} restored"
                 for t in sorted(toc & restored.keys()) if dumped.get(t, 0) != restored[t]]
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"{len(toc)} tables, {sum(dumped.values())} rows restored and "
                         "matching the dump")


def redis_verdict(expected: int, found: int) -> Verdict:
    if expected != found:
        return Verdict(False, f"{found} keys after restore, {expected} in the source")
    return Verdict(True, f"{found} keys restored, as many as the source held")


def aof_written(info: str) -> bool:
    """`INFO persistence` says AOF is on and no rewrite is running or pending."""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return (fields.get("aof_enabled", "").strip() == "1"
            and fields.get("aof_rewrite_in_progress", "").strip() == "0"
            and fields.get("aof_rewrite_scheduled", "").strip() == "0")
