"""The control plane's own log files stay bounded: `dockyard up` with a 4 KiB bound, the
API's log grown past it (by the API itself, and by the test appending as another writer
would), rotated by the API process that runs the background loops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.cli import daemons
from dockyard.core import own_logs
from tests.live import Live, bring_up, start, stop, wait_until

BOUND = 4096


@pytest.fixture
def small_logs(tmp_path: Path) -> Iterator[Live]:
    base = tmp_path / "live"
    env, url = start(base)
    env.update(DOCKYARD_LOG_FILE_MAX_BYTES=str(BOUND), DOCKYARD_LOG_FILE_KEEP="2",
               DOCKYARD_LOG_FILE_ROTATE_SECONDS="0.2")
    try:
        yield Live(url, env, base, bring_up(env))
    finally:
        stop(env)


def sizes(log: Path) -> list[int]:
    return [path.stat().st_size for path in (log, log.with_name(f"{log.name}.1"),
                                              log.with_name(f"{log.name}.2"),
                                              log.with_name(f"{log.name}.3")) if path.exists()]


def grow(log: Path, lines: int) -> None:
    with log.open("a") as out:
        for number in range(lines):
            out.write(f"filler line {number:05d} {'x' * 80}\n")


@pytest.mark.slow
def test_the_api_s_log_is_rotated_past_its_bound_and_two_rotations_kept(
        small_logs: Live) -> None:
    log = small_logs.data_dir / "logs" / "api.log"
    for round_ in range(3):
        grow(log, 60)  # ~5.6 KiB: past the bound
        wait_until(lambda: log.stat().st_size < BOUND, f"rotation {round_ + 1}")
    kept = sizes(log)
    assert len(kept) == 3, kept  # the live file and exactly 2 rotated ones
    assert all(size < 2 * BOUND for size in kept[1:]), kept
    assert "filler line 00059" in log.with_name("api.log.1").read_text()


def test_every_daemon_s_log_is_watched() -> None:
    assert {daemon.name for daemon in daemons.ALL} == set(own_logs.DAEMONS)
