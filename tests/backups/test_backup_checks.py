"""What a verification compares, on the exact texts pg_restore, psql and Redis give."""

from __future__ import annotations

from datetime import date

from dockyard.core.backup_checks import (
    CopyCounter,
    Verdict,
    aof_written,
    postgres_verdict,
    redis_verdict,
    restored_counts,
    toc_tables,
)
from dockyard.core.backup_engines import abandoned
from dockyard.core.backup_restore import restored_name

TOC = """;
; Archive created at 2026-12-02 04:10:00 UTC
;     dbname: shop
;
215; 1259 16385 TABLE public items shop
216; 1259 16390 TABLE public My Table shop
217; 1259 16391 SEQUENCE public items_id_seq shop
3331; 0 16385 TABLE DATA public items shop
3332; 0 16390 TABLE DATA public My Table shop
3187; 2606 16389 CONSTRAINT public items items_pkey shop
"""

DATA = b"""--
-- PostgreSQL database dump
--
COPY public.items (id, name) FROM stdin;
1\tone
2\ttwo with a \\n newline
3\tthree
\\.

COPY public."My Table" FROM stdin;
\\.

SELECT pg_catalog.setval('public.items_id_seq', 3, true);
"""


def test_the_tables_of_a_table_of_contents() -> None:
    assert toc_tables(TOC) == {("public", "items"), ("public", "My Table")}


def test_rows_are_counted_per_copy_block_in_any_chunking() -> None:
    for size in (1, 7, len(DATA)):
        counter = CopyCounter()
        for start in range(0, len(DATA), size):
            counter.feed(DATA[start:start + size])
        assert counter.finish() == {("public", "items"): 3, ("public", "My Table"): 0}


def test_psql_listing_to_counts() -> None:
    assert restored_counts("public\titems\t3\npublic\tMy Table\t0\n") == {
        ("public", "items"): 3, ("public", "My Table"): 0}


def test_a_restore_matching_the_dump_is_good() -> None:
    toc = {("public", "items"), ("public", "empty")}
    verdict = postgres_verdict(toc, {("public", "items"): 3, ("public", "empty"): 0},
                               {("public", "items"): 3, ("public", "empty"): 0})
    assert verdict == Verdict(True, "2 tables, 3 rows restored and matching the dump")


def test_missing_extra_and_short_tables_are_named() -> None:
    verdict = postgres_verdict({("public", "items"), ("public", "gone")},
                               {("public", "items"): 3, ("public", "gone"): 1},
                               {("public", "items"): 2, ("public", "stray"): 0})
    assert verdict == Verdict(False, "tables missing after restore: public.gone; tables not "
                                     "in the dump: public.stray; public.items: 3 rows dumped, "
                                     "2 restored")


def test_redis_key_counts() -> None:
    assert redis_verdict(5, 5) == Verdict(True, "5 keys restored, as many as the source held")
    assert redis_verdict(5, 4) == Verdict(False, "4 keys after restore, 5 in the source")


def test_aof_is_written_once_on_and_no_rewrite_is_running_or_pending() -> None:
    info = "# Persistence\r\naof_enabled:1\r\naof_rewrite_in_progress:{}\r\n" \
           "aof_rewrite_scheduled:{}\r\n"
    assert aof_written(info.format(0, 0))
    assert not aof_written(info.format(1, 0))
    assert not aof_written(info.format(0, 1))
    assert not aof_written(info.format(0, 0).replace("aof_enabled:1", "aof_enabled:0"))


def test_a_restored_service_is_named_by_its_day_within_63_characters() -> None:
    assert restored_name("db", date(2026, 12, 2)) == "db-restored-20261202"
    long = restored_name("a" * 50 + "-b" * 6, date(2026, 12, 2))
    assert len(long) == 63
    assert long.endswith("-restored-20261202")


def test_only_scratch_containers_of_no_live_backup_or_restore_are_abandoned() -> None:
    scratch = {"dockyard.scratch": "true", "dockyard.backup": "b1"}
    assert abandoned(scratch, set(), now=100)
    assert not abandoned(scratch, {"b1"}, now=100)
    assert not abandoned({"dockyard.backup": "b1"}, set(), now=100)
    loader = {**scratch, "dockyard.scratch.expires": "200"}
    assert not abandoned(loader, set(), now=100)
    assert abandoned(loader, set(), now=300)
