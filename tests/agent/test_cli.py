"""The `cluster` and `images` command groups, run as a person would (no root work done)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli import cluster, images


def test_cluster_status_of_a_cluster_that_is_not_up(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_CLUSTER_ROOT", str(tmp_path))
    result = CliRunner().invoke(cluster.app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"name": "registry", "address": "", "state": "down"}]


def test_images_bootstrap_refuses_unknown_images(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKYARD_IMAGES_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(images.app, ["bootstrap", "--image", "oracle", "--no-load"])
    assert result.exit_code != 0
    assert "unknown image oracle" in str(result.exception)
