"""The DigitalOcean provider through the official `pydo` client against the local fake, whose
every exchange is checked against DigitalOcean's published OpenAPI document (none may be
refused; the document is read once per test process)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydo
import pytest
from azure.core.pipeline.policies import HeadersPolicy

from dockyard.kernel.errors import InvalidInput, NotFound
from dockyard.providers.digitalocean import (
    MANAGED_RULE,
    MANAGED_TAG,
    DigitalOcean,
    DigitalOceanFailed,
    Retries,
    UnmanagedDroplet,
)
from tests.api.test_deploys import closed_port
from tests.fakes.digitalocean import (
    TOKEN,
    CannedError,
    FakeDigitalOcean,
    assign_documentation_ip,
    serve_checked,
)

IMAGE = "ubuntu-24-04-x64"
ROOT = Path(__file__).resolve().parents[2]
FAST = Retries(attempts=2, backoff=0.01, max_wait=5)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeDigitalOcean]:
    yield from serve_checked(tmp_path / "digitalocean.json", action_polls=2)


@pytest.fixture
def do(fake: FakeDigitalOcean) -> DigitalOcean:
    return DigitalOcean(TOKEN, fake.base_url, retries=FAST, poll_interval=0.01)


def gets(fake: FakeDigitalOcean, path: str) -> list[str]:
    return [r for r in fake.requests if r.startswith(f"GET {path}?")]


def test_only_droplets_carrying_the_managed_tag_are_listed(fake, do):
    fake.add_droplet("personal-blog", ["web"])
    fake.add_droplet("untagged", [])
    ours = fake.add_droplet("node-1", [MANAGED_TAG, "ws-1"])
    [listed] = do.list_droplets()
    assert (listed.id, listed.name, listed.managed) == (ours["id"], "node-1", True)
    assert listed.ip == ours["networks"]["v4"][0]["ip_address"]
    assert listed.tags == (MANAGED_TAG, "ws-1")


def test_created_droplets_carry_the_managed_tag_and_boot_with_their_user_data(tmp_path):
    booted: list[tuple[str, str]] = []

    def boot(droplet: dict[str, Any], user_data: str) -> str:
        booted.append((droplet["name"], user_data))
        return assign_documentation_ip(droplet, user_data)

    for fake in serve_checked(tmp_path / "do.json", on_boot=boot):
        do = DigitalOcean(TOKEN, fake.base_url, retries=FAST, poll_interval=0.01)
        made = do.create_droplets(["node-1", "node-2"], "fra1", "s-1vcpu-1gb", IMAGE,
                                  user_data="#!/bin/sh\necho hi\n", tags=["ws-1"],
                                  vpc="760e09ef-dc84-11e8-981e-3cfdfeaae000")
        assert [(d.name, d.status, d.tags, d.region, d.image) for d in made] == [
            (name, "new", (MANAGED_TAG, "ws-1"), "fra1", IMAGE) for name in ("node-1", "node-2")]
        active = do.wait_active([d.id for d in made], timeout=10)
        assert all(d.status == "active" and d.ip for d in active)
        assert sorted(booted) == [("node-1", "#!/bin/sh\necho hi\n"),
                                  ("node-2", "#!/bin/sh\necho hi\n")]
        assert {d.name for d in do.list_droplets()} == {"node-1", "node-2"}


def test_the_managed_tag_is_added_once_even_when_asked_for(fake, do):
    [made] = do.create_droplets(["node-1"], "nyc3", "s-1vcpu-1gb", IMAGE,
                                tags=[MANAGED_TAG, "ws-1", "ws-1"])
    assert made.tags == (MANAGED_TAG, "ws-1")


def test_destroying_an_unmanaged_droplet_is_refused_unless_forced(fake, do):
    personal = fake.add_droplet("personal-blog", ["web"])
    with pytest.raises(UnmanagedDroplet) as refused:
        do.destroy(personal["id"])
    assert MANAGED_RULE in refused.value.message
    assert "force=True" in refused.value.message
    assert refused.value.status_code == 403
    assert str(personal["id"]) in fake.state.droplets
    do.destroy(personal["id"], force=True)
    assert str(personal["id"]) not in fake.state.droplets


def test_a_managed_droplet_is_destroyed_and_a_missing_one_is_not_found(fake, do):
    [made] = do.create_droplets(["node-1"], "nyc3", "s-1vcpu-1gb", IMAGE)
    do.destroy(made.id)
    assert fake.state.droplets == {}
    with pytest.raises(NotFound):
        do.destroy(made.id)


def test_a_snapshot_powers_off_waits_for_the_actions_and_can_be_used_and_deleted(fake, do):
    [base] = do.create_droplets(["snapshot-base"], "fra1", "s-1vcpu-1gb", IMAGE)
    do.wait_active([base.id], timeout=10)
    snapshot = do.snapshot(base.id, "dockyard-agent-1.2.0")
    assert (snapshot.name, snapshot.droplet_id, snapshot.regions) == (
        "dockyard-agent-1.2.0", str(base.id), ("fra1",))
    assert do.droplet(base.id).status == "off"
    waited = [a for a in fake.state.actions.values() if a["action"]["type"] != "create"]
    assert [(a["action"]["type"], a["action"]["status"]) for a in waited] == [
        ("power_off", "completed"), ("snapshot", "completed")]
    assert all(a["polls"] > 2 for a in waited)  # seen in progress first
    assert do.snapshots() == [snapshot]
    [from_snapshot] = do.create_droplets(["node-1"], "fra1", "s-1vcpu-1gb", int(snapshot.id))
    assert from_snapshot.image == snapshot.id
    do.delete_snapshot(snapshot.id)
    assert do.snapshots() == []


def test_an_action_that_errors_is_a_clear_error(fake, do):
    [base] = do.create_droplets(["snapshot-base"], "fra1", "s-1vcpu-1gb", IMAGE)
    fake.error_next_action()
    with pytest.raises(DigitalOceanFailed) as failed:
        do.snapshot(base.id, "dockyard-agent-1.2.0")
    assert "power_off action" in failed.value.message
    assert "ended errored" in failed.value.message
    assert do.snapshots() == []


def test_lists_follow_every_page(fake):
    for n in range(5):
        fake.add_droplet(f"node-{n}", [MANAGED_TAG])
    fake.add_droplet("personal", ["web"])
    do = DigitalOcean(TOKEN, fake.base_url, retries=FAST, page_size=2)
    assert sorted(d.name for d in do.list_droplets()) == [f"node-{n}" for n in range(5)]
    assert len(gets(fake, "/v2/droplets")) == 3


def test_a_rate_limit_is_waited_out_then_the_call_succeeds(fake, do):
    fake.add_droplet("node-1", [MANAGED_TAG])
    fake.fail_next(CannedError(429, reset_in=2))
    started = time.monotonic()
    assert [d.name for d in do.list_droplets()] == ["node-1"]
    assert time.monotonic() - started >= 1.0  # until ratelimit-reset, not the 10 ms backoff
    assert len(gets(fake, "/v2/droplets")) == 2


def test_server_errors_are_retried_a_bounded_number_of_times_then_explained(fake, do):
    fake.fail_next(*[CannedError(500)] * 3)
    with pytest.raises(DigitalOceanFailed) as failed:
        do.sizes()
    assert failed.value.message == (
        "DigitalOcean answered HTTP 500 while listing droplet sizes: Unexpected server-side "
        "error (gave up after 3 attempts)")
    assert failed.value.status_code == 502
    assert len(gets(fake, "/v2/sizes")) == 3


def test_a_create_that_meets_a_server_error_is_not_sent_twice(fake, do):
    fake.fail_next(CannedError(500, method="POST", path="/v2/droplets"))
    with pytest.raises(DigitalOceanFailed, match="HTTP 500 while creating droplets node-1"):
        do.create_droplets(["node-1"], "nyc3", "s-1vcpu-1gb", IMAGE)
    assert [r for r in fake.requests if r.startswith("POST")] == ["POST /v2/droplets?"]


def test_a_refused_token_says_how_to_store_another(fake):
    do = DigitalOcean("not-the-token", fake.base_url, retries=FAST)
    with pytest.raises(DigitalOceanFailed) as failed:
        do.regions()
    assert "refused the token while listing regions (Unable to authenticate you)" in (
        failed.value.message)
    assert "dockyard credentials set NAME --provider digitalocean" in failed.value.message


def test_sizes_and_regions_are_typed_with_prices(do):
    sizes = {s.slug: s for s in do.sizes()}
    assert sizes["s-1vcpu-1gb"].price_monthly == 6.0
    assert sizes["s-1vcpu-1gb"].memory_mb == 1024
    assert "fra1" in sizes["s-1vcpu-1gb"].regions
    assert {r.slug for r in do.regions()} == {"nyc3", "fra1", "ams3"}


@pytest.mark.parametrize(("names", "field", "said"), [
    (["web\n"], {}, "is not a droplet name"),
    (["-web"], {}, "is not a droplet name"),
    ([f"n{i}" for i in range(11)], {}, "create 1 to 10 droplets"),
    (["web"], {"tags": ["bad tag"]}, "is not a tag"),
    (["web"], {"region": "fra1\n"}, "is not a region"),
    (["web"], {"user_data": "x" * (64 * 1024 + 1)}, "user data holds at most"),
    (["web"], {"vpc": "760e09ef; rm"}, "is not a VPC id"),
    (["web"], {"ssh_keys": ["my key"]}, "is not an SSH key id or MD5 fingerprint"),
    (["web"], {"image": "Ubuntu 24.04"}, "is not an image slug or id"),
])
def test_bad_input_is_refused_before_anything_is_sent(fake, do, names, field, said):
    options: dict[str, Any] = {"region": "nyc3", "size": "s-1vcpu-1gb", "image": IMAGE, **field}
    with pytest.raises(InvalidInput, match=said):
        do.create_droplets(names, **options)
    assert fake.requests == []


def test_the_token_goes_over_https_or_to_this_machine_only():
    with pytest.raises(InvalidInput, match="over https"):
        DigitalOcean(TOKEN, "http://api.example.test")
    DigitalOcean(TOKEN, "https://api.example.test")


def test_the_fake_refuses_a_request_outside_the_document(fake):
    answer = httpx.post(f"{fake.base_url}/v2/droplets", json={"name": "web", "size": 5},
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400
    assert answer.json()["id"] == "bad_request"
    assert fake.state.droplets == {}


def test_the_fake_records_an_answer_outside_the_document(tmp_path):
    with FakeDigitalOcean(None) as fake:
        droplet = fake.add_droplet("node-1", [MANAGED_TAG])
        droplet["status"] = "exploded"
        DigitalOcean(TOKEN, fake.base_url, retries=FAST).list_droplets()
    assert len(fake.violations) == 1
    assert "GET /v2/droplets -> 200" in fake.violations[0]


def test_the_fake_keeps_its_state_across_runs(tmp_path):
    state = tmp_path / "do.json"
    for fake in serve_checked(state):
        DigitalOcean(TOKEN, fake.base_url, retries=FAST).create_droplets(
            ["node-1"], "nyc3", "s-1vcpu-1gb", IMAGE)
    for fake in serve_checked(state):
        assert [d.name for d in DigitalOcean(TOKEN, fake.base_url).list_droplets()] == [
            "node-1"]


def test_a_slow_boot_shows_the_droplet_new_until_it_has_an_address(tmp_path):
    release = threading.Event()

    def boot(droplet: dict[str, Any], user_data: str) -> str:
        release.wait(10)
        return "198.51.100.7"

    for fake in serve_checked(tmp_path / "do.json", on_boot=boot):
        do = DigitalOcean(TOKEN, fake.base_url, retries=FAST, poll_interval=0.01)
        [made] = do.create_droplets(["node-1"], "nyc3", "s-1vcpu-1gb", IMAGE)
        assert (do.droplet(made.id).status, do.droplet(made.id).ip) == ("new", None)
        release.set()
        [active] = do.wait_active([made.id], timeout=10)
        assert (active.status, active.ip) == ("active", "198.51.100.7")


def test_the_fakes_other_operations_answer_pydo_within_the_document(fake):
    client = pydo.Client(token=TOKEN, endpoint=fake.base_url, retry_total=0,
                         authentication_policy=HeadersPolicy(
                             {"Authorization": f"Bearer {TOKEN}"}))
    single = client.droplets.create({"name": "solo", "size": "s-1vcpu-1gb", "image": IMAGE,
                                     "tags": ["batch"]})
    assert single["droplet"]["name"] == "solo"
    [create] = single["links"]["actions"]
    assert client.actions.get(create["id"])["action"]["type"] == "create"
    assert client.tags.create({"name": "batch-2"})["tag"]["name"] == "batch-2"
    assert {t["name"] for t in client.tags.list()["tags"]} == {"batch", "batch-2"}
    fake.add_key("laptop", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm0 me@laptop")
    assert [k["name"] for k in client.ssh_keys.list()["ssh_keys"]] == ["laptop"]
    assert client.images.list(private=True)["images"] == []
    assert IMAGE in {i["slug"] for i in client.images.list()["images"]}
    fake.add_droplet("kept", ["other"])
    client.droplets.destroy_by_tag(tag_name="batch")
    assert [d["name"] for d in fake.state.droplets.values()] == ["kept"]


def test_the_fake_runs_alone_and_keeps_its_state_in_the_file(tmp_path):
    port, state = closed_port(), tmp_path / "do.json"
    command = [sys.executable, "-m", "tests.fakes.digitalocean", "--port", str(port),
               "--state", str(state)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == (
                f"fake DigitalOcean API at http://127.0.0.1:{port}")
            do = DigitalOcean(TOKEN, f"http://127.0.0.1:{port}", retries=FAST)
            do.create_droplets(["node-1"], "nyc3", "s-1vcpu-1gb", IMAGE)
        finally:
            process.terminate()
    saved = json.loads(state.read_text())
    assert [d["name"] for d in saved["droplets"].values()] == ["node-1"]
    assert saved["violations"] == []


def test_an_api_that_does_not_answer_is_a_clear_error_after_the_retries():
    do = DigitalOcean(TOKEN, f"http://127.0.0.1:{closed_port()}", retries=FAST)
    with pytest.raises(DigitalOceanFailed, match="DigitalOcean's API did not answer while "
                                                 "listing regions"):
        do.regions()


def test_digitalocean_refusing_a_create_is_a_422_saying_why_and_makes_nothing(fake, do):
    with pytest.raises(DigitalOceanFailed) as failed:
        do.create_droplets(["node-1"], "nyc3", "s-1vcpu-1gb", "no-such-image")
    assert failed.value.message == (
        "DigitalOcean answered HTTP 422 while creating droplets node-1 in nyc3: You specified "
        "an invalid image: no-such-image.")
    assert failed.value.status_code == 422
    assert fake.state.droplets == {}


def test_a_droplet_whose_boot_fails_stays_new_and_waiting_for_it_says_which(tmp_path):
    def boot(droplet: dict[str, Any], user_data: str) -> str:
        raise RuntimeError("cloud-init failed")

    for fake in serve_checked(tmp_path / "do.json", on_boot=boot):
        do = DigitalOcean(TOKEN, fake.base_url, retries=FAST, poll_interval=0.01)
        [made] = do.create_droplets(["node-1"], "nyc3", "s-1vcpu-1gb", IMAGE)
        with pytest.raises(DigitalOceanFailed, match="droplets node-1 were not active"):
            do.wait_active([made.id], timeout=0.3)
        assert fake.boot_failures == [f"droplet {made.id}: RuntimeError('cloud-init failed')"]
        assert do.droplet(made.id).status == "new"
