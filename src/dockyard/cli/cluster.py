"""`dockyard cluster`: a local multi-host cluster of network namespaces (root only)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from dockyard.cli.client import ApiClient
from dockyard.cli.output import JsonFlag, done, show
from dockyard.cli.resources import add_server
from dockyard.providers.cluster import Cluster, ClusterSettings

app = typer.Typer(help="A local cluster of hosts in network namespaces, for development and tests.",
                  no_args_is_help=True)
STATUS_COLUMNS = ["name", "address", "state", "docker"]


def _cluster() -> Cluster:
    if os.geteuid() != 0:
        raise RuntimeError("the local cluster creates namespaces and links; run it as root")
    return Cluster(ClusterSettings())


@app.command()
def up(
    nodes: Annotated[int, typer.Option("--nodes", min=1, max=50, help="How many hosts.")] = 3,
    register: Annotated[bool, typer.Option(
        help="Install your workspace's agent key and add the hosts to the inventory "
             "(needs `dockyard login` as an admin).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create the hosts (namespace, dockerd, nginx, agent each) and one image registry."""
    cluster = _cluster()
    client = ApiClient.from_config() if register else None
    key = bytes.fromhex(client.get("/infra/agent-key")["key"]) if client else None
    try:
        cluster.up(nodes, agent_key=key)
    except Exception as exc:
        raise RuntimeError(f"cluster up failed: {exc}; `dockyard cluster down` removes "
                           "what was created") from exc
    if client is not None:
        port = cluster.settings.agent_port
        for node in cluster.state.nodes:
            add_server(client, node.name, node.ip, port, "cluster",
                       fingerprint=cluster.fingerprint(node))
    show(cluster.status(), STATUS_COLUMNS, as_json)
    if not register:
        done(f"agent secret: {cluster.secret_file}")


@app.command()
def down() -> None:
    """Remove every namespace, link, mount and process the cluster created."""
    problems = _cluster().down()
    if problems:
        raise RuntimeError("; ".join(problems))
    done("cluster removed")


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Whether the registry, each node's agent and each node's dockerd answer."""
    show(_cluster().status(), STATUS_COLUMNS, as_json)
