"""An agent upgrades in place: the route checks, self-tests and switches to a release in a
real release layout (the in-process agent; the self-test runs a real python)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dockyard.agent import auth, release
from dockyard.agent.app import create_app
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.release import Bundle, Layout
from dockyard.agent.settings import AgentSettings
from dockyard.agent.upgrade import NOT_FROM_BUNDLE
from dockyard.agent.upgrade_routes import MAX_BUNDLE_BYTES

SECRET = "upgrade-agent-secret"


def package_copy(root: Path, change: Callable[[Path], None]) -> Path:
    copy = root / "dockyard"
    shutil.copytree(release.package_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    change(copy)
    return copy


def with_extra_file(name: str) -> Callable[[Path], None]:
    def change(copy: Path) -> None:
        (copy / "agent" / f"{name}.py").write_text(f"NAME = {name!r}\n")

    return change


def broken_app(copy: Path) -> None:
    app = copy / "agent" / "app.py"
    app.write_text(app.read_text() + '\nraise RuntimeError("this release is broken on purpose")\n')


def bundle_of(tmp_path: Path, name: str, change: Callable[[Path], None]) -> Bundle:
    return release.build_bundle(package_copy(tmp_path / "bundles" / name, change))


def installed_layout(home: Path, bundle: Bundle | None = None) -> Layout:
    """A node's layout holding one release, `current`: the running code's by default."""
    layout = Layout(home)
    bundle = bundle or release.current_bundle()
    release.unpack(bundle.data, layout.release(bundle.version))
    release.replace_link(layout.current, layout.release(bundle.version))
    return layout


def agent_client(tmp_path: Path, releases_dir: Path | None
                 ) -> tuple[NodeAgentClient, httpx.ASGITransport]:
    settings = AgentSettings(state_dir=tmp_path / "agent", releases_dir=releases_dir, tls=False,
                             docker_host=f"unix://{tmp_path}/no-docker.sock")
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    transport = httpx.ASGITransport(app=create_app(settings))
    return NodeAgentClient("http://agent.test", SECRET, transport=transport), transport


def restart_requested(transport: httpx.ASGITransport) -> bool:
    requested: bool = transport.app.state.upgrader.restart.requested  # type: ignore[attr-defined]
    return requested


async def test_an_agent_switches_to_a_good_release_and_asks_to_restart(tmp_path: Path) -> None:
    layout = installed_layout(tmp_path / "home")
    old = release.link_target(layout.current)
    bundle = bundle_of(tmp_path, "good", with_extra_file("extra"))
    client, transport = agent_client(tmp_path, layout.home)
    async with client:
        accepted = await client.upgrade_agent(bundle)
    assert (accepted.version, accepted.previous) == (bundle.version, release.code_version())
    assert release.link_target(layout.current) == layout.release(bundle.version).resolve()
    assert release.link_target(layout.previous) == old
    assert (layout.release(bundle.version) / "dockyard" / "agent" / "extra.py").exists()
    assert restart_requested(transport)


async def test_a_release_that_fails_its_self_test_is_refused_and_nothing_switches(
        tmp_path: Path) -> None:
    layout = installed_layout(tmp_path / "home")
    bundle = bundle_of(tmp_path, "broken", broken_app)
    client, transport = agent_client(tmp_path, layout.home)
    async with client:
        with pytest.raises(AgentError) as refused:
            await client.upgrade_agent(bundle)
    assert refused.value.status_code == 422
    assert "failed its self-test (exit code 1" in refused.value.detail
    assert "broken on purpose" in refused.value.detail
    assert release.link_target(layout.current) == layout.release(release.code_version())
    assert not layout.previous.exists()
    assert not restart_requested(transport)


async def test_an_agent_not_installed_from_a_bundle_says_how_to_upgrade_it(
        tmp_path: Path) -> None:
    client, transport = agent_client(tmp_path, None)
    async with client:
        with pytest.raises(AgentError) as refused:
            await client.upgrade_agent(bundle_of(tmp_path, "good", with_extra_file("extra")))
    assert (refused.value.status_code, refused.value.detail) == (409, NOT_FROM_BUNDLE)
    assert not restart_requested(transport)


async def test_a_bundle_damaged_on_the_way_is_refused(tmp_path: Path) -> None:
    layout = installed_layout(tmp_path / "home")
    good = bundle_of(tmp_path, "good", with_extra_file("extra"))
    damaged = Bundle(good.version, good.data[:-1] + bytes([good.data[-1] ^ 1]), good.sha256)
    client, _ = agent_client(tmp_path, layout.home)
    async with client:
        with pytest.raises(AgentError) as refused:
            await client.upgrade_agent(damaged)
    assert refused.value.status_code == 422
    assert "damaged on the way" in refused.value.detail
    assert not layout.release(good.version).exists()


async def test_an_unsafe_bundle_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    layout = installed_layout(tmp_path / "home")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        member = tarfile.TarInfo("../../outside.py")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"x"))
    data = raw.getvalue()
    unsafe = Bundle("0.1.0+0123456789", data, hashlib.sha256(data).hexdigest())
    client, _ = agent_client(tmp_path, layout.home)
    async with client:
        with pytest.raises(AgentError) as refused:
            await client.upgrade_agent(unsafe)
    assert refused.value.status_code == 422
    assert "not a relative path" in refused.value.detail
    assert sorted(p.name for p in layout.releases.iterdir()) == [release.code_version()]
    assert not (tmp_path / "outside.py").exists()


@pytest.mark.parametrize("params", [
    {"version": "0.1.0+0123456789", "sha256": "A" * 64},
    {"version": "../../etc+0123456789", "sha256": "a" * 64},
    {"version": "0.1.0", "sha256": "a" * 64},
])
async def test_the_version_and_digest_are_validated_at_the_edge(
        tmp_path: Path, params: dict[str, str]) -> None:
    client, _ = agent_client(tmp_path, installed_layout(tmp_path / "home").home)
    async with client:
        with pytest.raises(AgentError) as refused:
            await client._call("POST", "/agent/upgrade", upload=b"x", params=params)
    assert refused.value.status_code == 422


async def test_the_last_three_releases_are_kept(tmp_path: Path) -> None:
    layout = installed_layout(tmp_path / "home")
    bundles = [bundle_of(tmp_path, name, with_extra_file(name)) for name in ("b1", "b2", "b3")]
    for bundle in bundles:
        client, _ = agent_client(tmp_path, layout.home)  # a fresh agent: the last one restarted
        async with client:
            await client.upgrade_agent(bundle)
    kept = sorted(path.name for path in layout.releases.iterdir())
    assert kept == sorted(bundle.version for bundle in bundles)
    assert release.link_target(layout.previous) == layout.release(bundles[1].version).resolve()


async def test_a_bundle_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    layout = installed_layout(tmp_path / "home")
    data = bytes(MAX_BUNDLE_BYTES + 1)
    huge = Bundle("0.1.0+0123456789", data, hashlib.sha256(data).hexdigest())
    client, _ = agent_client(tmp_path, layout.home)
    async with client:
        with pytest.raises(AgentError) as refused:
            await client.upgrade_agent(huge)
    assert refused.value.status_code == 413
    assert not layout.release(huge.version).exists()
