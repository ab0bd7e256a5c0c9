"""The agent's firewall routes: who may reach a port this node publishes."""

from __future__ import annotations

from dockyard.agent.models import ContainerName, FirewallRule
from dockyard.agent.parts import Parts
from dockyard.agent.web import Call, Param, Routes, path
from dockyard.kernel.errors import InvalidInput

NAME: Param[str] = path("name", ContainerName)
routes: Routes[Parts] = Routes()


@routes.put("/firewall/{name}", status=204, params=(NAME,), body=FirewallRule)
async def apply_firewall_rule(call: Call[Parts]) -> None:
    """Apply or replace the rule set `name`; the same request again changes nothing."""
    name, rule = call[NAME], call.body(FirewallRule)
    if rule.name != name:
        raise InvalidInput(f"the rule is named {rule.name!r} but was sent to /firewall/{name}")
    await call.parts.node.apply_firewall_rule(rule)


@routes.delete("/firewall/{name}", status=204, params=(NAME,))
async def remove_firewall_rule(call: Call[Parts]) -> None:
    await call.parts.node.remove_firewall_rule(call[NAME])


@routes.get("/firewall")
async def list_firewall_rules(call: Call[Parts]) -> list[FirewallRule]:
    return call.parts.node.firewall_rules()
