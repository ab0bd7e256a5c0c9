"""One stage for the whole end-to-end package: the control plane and the 3-node cluster come
up once, before its first test, and go down after its last."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dockyard.providers.images import Tarball
from tests.agent.conftest import base_tarball, require_the_real_stack
from tests.e2e.stage import Stage, staged

__all__ = ["base_tarball"]


@pytest.fixture(scope="package")
def stage(tmp_path_factory: pytest.TempPathFactory, base_tarball: Tarball) -> Iterator[Stage]:
    require_the_real_stack()
    yield from staged(tmp_path_factory.mktemp("stage"))
