"""What the agent's routes work with, built once by `create_app` and passed to each handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.agent.auth import KeyStore
    from dockyard.agent.disk_guard import DiskGuard
    from dockyard.agent.hoststats import HostSampler
    from dockyard.agent.node import Node
    from dockyard.agent.request_metrics import RequestCollector
    from dockyard.agent.upgrade import Upgrader


@dataclass(frozen=True)
class Parts:
    node: Node
    keys: KeyStore
    upgrader: Upgrader
    request_metrics: RequestCollector
    host_sampler: HostSampler
    disk_guard: DiskGuard
