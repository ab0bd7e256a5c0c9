"""`dockyard cluster up --register`: namespace hosts join the inventory with the workspace's
agent key and their agents' certificates pinned, and the control plane sees each agent
active at the version it expects."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dockyard.agent import tls
from dockyard.agent.release import code_version
from tests.agent.conftest import require_the_real_stack
from tests.live import Live, ok, ok_json

pytestmark = pytest.mark.slow


def test_cluster_nodes_register_and_report_their_agent(live: Live) -> None:
    require_the_real_stack()
    root = Path("/var/tmp/dockyard-tests") / f"reg-{os.getpid()}"
    cluster_env = {"DOCKYARD_CLUSTER_ROOT": str(root), "DOCKYARD_CLUSTER_PREFIX": "dyr",
                   "DOCKYARD_CLUSTER_SUBNET": "10.234.0.0/24",
                   "DOCKYARD_CLUSTER_REGISTRY_PORT": "5002"}
    try:
        ok(live.run("cluster", "up", "--nodes", "2", "--register", **cluster_env))
        servers = ok_json(live.run("servers", "list", "--json"))
        assert sorted(s["name"] for s in servers) == ["dyr-node1", "dyr-node2"]
        for server in servers:
            certificate = tls.CertificateFiles(root / "nodes" / server["name"][4:] / "agent")
            assert server["agent_fingerprint"] == tls.fingerprint_of_file(
                certificate.certificate)
            assert server["agent_insecure_http"] is False
            assert (server["status"], server["provider"]) == ("active", "cluster")
            assert (server["agent_version"], server["agent_current"]) == (code_version(), True)
        one = ok_json(live.run("servers", "check", servers[0]["id"], "--json"))
        assert one["status"] == "active"
    finally:
        ok(live.run("cluster", "down", **cluster_env))
        shutil.rmtree(root, ignore_errors=True)
