"""Providers' pure parts: apt sources, debootstrap/tar argv, namespace and link argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.providers import images, local, netns
from dockyard.providers.cluster import registry_config

DEB822 = """Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.invalid/debian
Suites: bookworm

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_sources_are_parsed() -> None:
    assert images.parse_deb822(DEB822) == [
        images.AptSource("http://mirror.invalid/debian", ("bookworm", "bookworm-updates"),
                         ("main",)),
        images.AptSource("http://mirror.invalid/debian-security", ("bookworm-security",),
                         ("main",)),
    ]


def test_one_line_sources_are_parsed() -> None:
    text = ("# deb http://old.invalid/debian buster main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian trixie main contrib\n"
            "deb-src http://mirror.invalid/debian trixie main\n")
    assert images.parse_one_line(text) == [
        images.AptSource("http://mirror.invalid/debian", ("trixie",), ("main", "contrib"))]


def test_the_main_mirror_is_the_first_plain_release_suite() -> None:
    sources = images.parse_deb822(DEB822)
    assert images.main_mirror(list(reversed(sources))) == ("http://mirror.invalid/debian",
                                                          "bookworm")
    assert images.main_mirror(sources, "bookworm") == ("http://mirror.invalid/debian", "bookworm")
    with pytest.raises(RuntimeError, match="no Debian mirror"):
        images.main_mirror(sources, "trixie")


def test_machine_sources_reads_both_formats(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(DEB822)
    classic = tmp_path / "sources.list"
    classic.write_text("deb http://other.invalid/debian bookworm main\n")
    found = images.machine_sources(tmp_path, classic)
    assert [s.uri for s in found] == ["http://mirror.invalid/debian",
                                      "http://mirror.invalid/debian-security",
                                      "http://other.invalid/debian"]


def test_debootstrap_and_tar_argv() -> None:
    recipe = images.RECIPES["base"]
    assert images.debootstrap_argv(recipe, "bookworm", "http://m.invalid/debian", Path("/w/r"),
                                   Path("/c/debs")) == [
        "debootstrap", "--variant=minbase", "--include=python3,ca-certificates",
        "--cache-dir=/c/debs", "bookworm", "/w/r", "http://m.invalid/debian"]
    assert images.tar_argv(Path("/w/r"), Path("/c/base.tar")) == [
        "tar", "--numeric-owner", "-C", "/w/r", "-cf", "/c/base.tar", "."]


def test_tarball_names_change_with_the_recipe_suite_or_mirror() -> None:
    base, redis = images.RECIPES["base"], images.RECIPES["redis"]
    name = images.tarball_name(base, "bookworm", "http://a.invalid")
    assert name.startswith("base-bookworm-")
    assert name.endswith(".tar")
    assert name == images.tarball_name(base, "bookworm", "http://a.invalid")
    assert len({name, images.tarball_name(redis, "bookworm", "http://a.invalid"),
                images.tarball_name(base, "trixie", "http://a.invalid"),
                images.tarball_name(base, "bookworm", "http://b.invalid")}) == 4


def test_namespace_and_link_argv() -> None:
    assert netns.in_netns("dy-node1") == ["nsenter", "--net=/var/run/netns/dy-node1"]
    assert netns.bridge_up("dy-br0", "10.9.0.1/24") == [
        ["ip", "link", "add", "dy-br0", "type", "bridge"],
        ["ip", "addr", "add", "10.9.0.1/24", "dev", "dy-br0"],
        ["ip", "link", "set", "dy-br0", "up"]]
    inside = ["nsenter", "--net=/var/run/netns/n1"]
    assert netns.veth_into_namespace("v1h", "v1n", "n1", "br", "10.9.0.11/24") == [
        ["ip", "link", "add", "v1h", "type", "veth", "peer", "name", "v1n"],
        ["ip", "link", "set", "v1n", "netns", "n1"],
        ["ip", "link", "set", "v1h", "master", "br"],
        ["ip", "link", "set", "v1h", "up"],
        [*inside, "ip", "addr", "add", "10.9.0.11/24", "dev", "v1n"],
        [*inside, "ip", "link", "set", "v1n", "up"],
        [*inside, "ip", "link", "set", "lo", "up"]]


def test_mounts_under_a_root_deepest_first() -> None:
    mountinfo = "\n".join([
        "22 1 0:21 / /proc rw - proc proc rw",
        "90 1 0:50 / /c/nodes/n1/docker/exec/netns/x rw - nsfs nsfs rw",
        "91 1 0:51 / /c/nodes/n1/docker/data/overlay2/abc/merged rw - overlay overlay rw",
        "92 1 0:52 / /c/nodes/n1/docker/data rw - ext4 /dev/vda rw",
        "93 1 0:53 / /c/nodes-other rw - ext4 /dev/vda rw",
    ])
    assert netns.mounts_under(Path("/c/nodes"), mountinfo) == [
        "/c/nodes/n1/docker/data/overlay2/abc/merged",
        "/c/nodes/n1/docker/exec/netns/x",
        "/c/nodes/n1/docker/data",
    ]


def test_dockerd_argv_gives_each_daemon_its_own_everything() -> None:
    layout = local.DockerdLayout(Path("/c/n1/docker"), ("10.9.0.1:5000",))
    assert local.dockerd_argv(layout) == [
        "dockerd", "--data-root", "/c/n1/docker/data", "--exec-root", "/c/n1/docker/exec",
        "--host", "unix:///c/n1/docker/docker.sock", "--pidfile", "/c/n1/docker/dockerd.pid",
        "--config-file", "/c/n1/docker/daemon.json", "--insecure-registry", "10.9.0.1:5000"]


def test_agent_environment() -> None:
    launch = local.AgentLaunch(state_dir=Path("/c/n1/agent"), host="10.9.0.11", port=8421,
                               docker_host="unix:///c/n1/docker/docker.sock")
    env = local.agent_env(launch, {"PATH": "/usr/bin", "DOCKYARD_AGENT_PORT": "1"})
    assert env == {
        "PATH": "/usr/bin", "DOCKYARD_AGENT_HOST": "10.9.0.11", "DOCKYARD_AGENT_PORT": "8421",
        "DOCKYARD_AGENT_STATE_DIR": "/c/n1/agent",
        "DOCKYARD_AGENT_DOCKER_HOST": "unix:///c/n1/docker/docker.sock",
        "DOCKYARD_AGENT_NGINX_HTTP_PORT": "80", "DOCKYARD_AGENT_NGINX_HTTPS_PORT": "443",
        "DOCKYARD_AGENT_LOG_JSON": "true"}


def test_registry_configuration() -> None:
    assert registry_config(Path("/c/registry/data"), "10.9.0.1:5000") == (
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        "    rootdirectory: /c/registry/data\n  delete:\n    enabled: true\n"
        "http:\n  addr: 10.9.0.1:5000\n")
