"""The host rules, node route and resolvers that let cluster nodes reach out as real servers
do: exact argv, and the parsing of /proc/net/route and resolv.conf."""

from __future__ import annotations

from pathlib import Path

from dockyard.providers import local, netns

ROUTES = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)


def test_the_bridge_forward_rule_is_checked_inserted_and_deleted_in_the_filter_table() -> None:
    rule = netns.bridge_forward_rule("br")
    spec = ["FORWARD", "-i", "br", "-o", "br", "-j", "ACCEPT"]
    assert rule.argv("-C") == ["iptables", "-t", "filter", "-C", *spec]
    assert rule.argv("-I") == ["iptables", "-t", "filter", "-I", *spec]
    assert rule.argv("-D") == ["iptables", "-t", "filter", "-D", *spec]


def test_outbound_rules_forward_and_masquerade_only_the_bridge_subnet() -> None:
    rules = netns.outbound_rules("dy-br0", "10.9.0.0/24", "eth0")
    assert [rule.argv("-I") for rule in rules] == [
        ["iptables", "-t", "filter", "-I", "FORWARD", "-i", "dy-br0", "-o", "eth0",
         "-s", "10.9.0.0/24", "-j", "ACCEPT"],
        ["iptables", "-t", "filter", "-I", "FORWARD", "-i", "eth0", "-o", "dy-br0",
         "-d", "10.9.0.0/24", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
         "-j", "ACCEPT"],
        ["iptables", "-t", "nat", "-I", "POSTROUTING", "-s", "10.9.0.0/24", "-o", "eth0",
         "-j", "MASQUERADE"]]


def test_a_node_routes_through_the_bridge() -> None:
    assert netns.default_route("dy-node1", "10.9.0.1") == [
        "nsenter", "--net=/var/run/netns/dy-node1", "ip", "route", "add", "default",
        "via", "10.9.0.1"]


def test_the_uplink_is_the_default_route_with_the_lowest_metric() -> None:
    assert netns.default_interface(ROUTES) == "eth0"
    assert netns.default_interface(ROUTES.replace("\t100\t", "\t900\t")) == "wlan0"
    assert netns.default_interface(ROUTES.splitlines()[0]) is None
    assert netns.default_interface("") is None


def test_nameservers_a_node_can_reach() -> None:
    text = ("# generated\nsearch example.internal\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n"
            "nameserver fd00::1\nnameserver not-an-address\nnameserver\noptions edns0\n"
            "nameserver 192.0.2.53 # second\n")
    assert netns.nameservers(text) == ["10.1.2.3", "192.0.2.53"]
    assert netns.nameservers("nameserver 127.0.0.1\n") == []


def test_node_dockerd_gets_each_resolver() -> None:
    layout = local.DockerdLayout(Path("/c/n1"), dns=("10.1.2.3", "192.0.2.53"))
    argv = local.dockerd_argv(layout)
    assert argv[-4:] == ["--dns", "10.1.2.3", "--dns", "192.0.2.53"]
    assert "--dns" not in local.dockerd_argv(local.DockerdLayout(Path("/c/n1")))
