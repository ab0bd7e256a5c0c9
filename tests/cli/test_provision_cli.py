"""`dockyard servers provision|sizes|regions|droplets|destroy` and `dockyard snapshots ...`
against a control plane started with `dockyard up` whose DigitalOcean is the local fake, each
droplet's agent a real process started from its user-data (tests/api/provision/support.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.providers.digitalocean import MANAGED_RULE
from tests.api.provision.conftest import droplets, fake
from tests.fakes.digitalocean import TOKEN, FakeDigitalOcean
from tests.live import Live, bring_up, ok, ok_json, one_line_error, start, stop

__all__ = ["droplets", "fake"]  # fixtures


def this_host() -> str:
    """An address of this machine other than loopback (droplets refuse a loopback URL)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: only the route is read
        except OSError:
            pytest.skip("this machine has no address but loopback")
        address: str = probe.getsockname()[0]
    return address


@pytest.fixture
def cloud(tmp_path: Path, fake: FakeDigitalOcean) -> Iterator[Live]:
    """A control plane on a non-loopback address whose DigitalOcean is the fake, with its
    token stored."""
    base = tmp_path / "live"
    env, url = start(base)
    host = this_host()
    url = f"http://{host}:{env['DOCKYARD_PORT']}"
    env.update(DOCKYARD_DIGITALOCEAN_API_URL=fake.base_url, DOCKYARD_HOST=host,
               DOCKYARD_PUBLIC_URL=url,
               DOCKYARD_PROVISION_POLL_SECONDS="0.1", DOCKYARD_DIGITALOCEAN_RETRY_SECONDS="0")
    try:
        live = Live(url, env, base, bring_up(env))
        ok(live.run("credentials", "set", "digitalocean", "--provider", "digitalocean",
                    input=f"{TOKEN}\n"))
        yield live
    finally:
        stop(env)


def test_servers_are_provisioned_listed_and_destroyed(cloud: Live, fake: FakeDigitalOcean) -> None:
    said = ok(cloud.run("servers", "provision", "--region", "fra1", "--size", "s-1vcpu-1gb",
                        "--name", "web"))
    assert "1 server(s) ready, 0 failed" in said
    [server] = ok_json(cloud.run("servers", "list", "--json"))
    assert server["status"] == "active"
    assert server["name"] in said
    [droplet] = ok_json(cloud.run("servers", "droplets", "--json"))
    assert droplet["server"] == server["name"]
    ok(cloud.run("servers", "destroy", server["name"]))
    assert ok_json(cloud.run("servers", "list", "--json")) == []
    assert fake.state.droplets == {}


def test_sizes_show_the_monthly_price_and_regions_their_slugs(cloud: Live) -> None:
    sizes = ok(cloud.run("servers", "sizes"))
    assert "price" in sizes.lower()
    assert "6.0" in sizes
    assert "fra1" in ok(cloud.run("servers", "regions"))


def test_an_unmanaged_droplet_is_refused_without_force(cloud: Live, fake: FakeDigitalOcean) -> None:
    mine = fake.add_droplet("personal-blog", ["web"])
    one_line_error(cloud.run("servers", "destroy", "--droplet", str(mine["id"])), MANAGED_RULE)
    ok(cloud.run("servers", "destroy", "--droplet", str(mine["id"]), "--force"))
    assert fake.state.droplets == {}


def test_a_bad_region_is_one_line(cloud: Live) -> None:
    one_line_error(cloud.run("servers", "provision", "--region", "sfo9", "--size",
                             "s-1vcpu-1gb"), "not offered in region 'sfo9'")


def test_snapshots_list_and_delete_say_what_is_there(cloud: Live) -> None:
    assert ok_json(cloud.run("snapshots", "list", "--json")) == []
    one_line_error(cloud.run("snapshots", "delete", "123"), "123")
