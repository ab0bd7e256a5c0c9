"""The stage of each end-to-end module: its own control plane and 3-node cluster, up before
its first test and down after its last. Not one for the whole package: a module that puts a
node under load leaves the log pipeline a backlog that held up the next module's logs past
its timeouts (seen when the stage was shared)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dockyard.providers.images import Tarball
from tests.agent.conftest import base_tarball, require_the_real_stack
from tests.e2e.stage import Stage, staged

__all__ = ["base_tarball"]


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, base_tarball: Tarball) -> Iterator[Stage]:
    require_the_real_stack()
    yield from staged(tmp_path_factory.mktemp("stage"))
