"""The agent's firewall routes: who may reach a port this node publishes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from dockyard.agent.models import ContainerName, FirewallRule
from dockyard.agent.node import Node
from dockyard.kernel.errors import InvalidInput

RuleName = Annotated[ContainerName, Path()]


def _node(request: Request) -> Node:  # as app.get_node, which this module cannot import
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(_node)]
router = APIRouter()


@router.put("/firewall/{name}", status_code=204)
async def apply_firewall_rule(name: RuleName, rule: FirewallRule, node: NodeDep) -> None:
    """Apply or replace the rule set `name`; the same request again changes nothing."""
    if rule.name != name:
        raise InvalidInput(f"the rule is named {rule.name!r} but was sent to /firewall/{name}")
    await node.apply_firewall_rule(rule)


@router.delete("/firewall/{name}", status_code=204)
async def remove_firewall_rule(name: RuleName, node: NodeDep) -> None:
    await node.remove_firewall_rule(name)


@router.get("/firewall")
async def list_firewall_rules(node: NodeDep) -> list[FirewallRule]:
    return node.firewall_rules()
