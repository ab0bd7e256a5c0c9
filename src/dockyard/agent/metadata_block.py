"""A provisioned server's containers may not reach the cloud's metadata service.

On a droplet any process can read the user-data at http://169.254.169.254/metadata/v1/
user-data, and the user-data holds the workspace's agent key and the agent's TLS key. What
enters FORWARD from the node's Docker bridges towards that address is rejected (fails fast
in the app) by rules tagged `dockyard-metadata` in Docker's DOCKER-USER chain; the node
itself still reaches it. Applied at every agent start when `block_metadata` is set."""

from __future__ import annotations

from dockyard.agent.firewall import LOCAL_BRIDGES, Argv, Firewall, FirewallError

METADATA_ADDRESS = "169.254.169.254/32"
METADATA_TAG = "dockyard-metadata"


def block_specs() -> list[Argv]:
    marked = ["-m", "comment", "--comment", METADATA_TAG]
    return [["-i", bridge, "-d", METADATA_ADDRESS, *marked, "-j", "REJECT"]
            for bridge in LOCAL_BRIDGES]


def block(firewall: Firewall) -> str | None:
    """Put the rules in place unless they are; the problem when iptables fails."""
    try:
        for spec in block_specs():
            firewall.ensure_in_docker_user(spec)
    except FirewallError as exc:
        return f"containers can reach the cloud metadata service: {exc.message}"
    return None
