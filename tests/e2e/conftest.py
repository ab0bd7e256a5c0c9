"""The stage of the end-to-end modules (a control plane and its 3-node cluster) is shared: a
module's `stage` is `stages.get(settings)`, the stage already up when it has the same
settings, else the old one is taken down and a new one brought up (one cluster at a time:
they share the cluster's name, subnet and registry port). Bringing one up and down costs
about 20 s; the modules on the default settings share one. The default settings point
certificates at a pebble and DNS at the fake Cloudflare, both up for the whole package (they
are cheap), so the domains module shares the stage too.

A module that needs settings of its own asks for them (test_agent_restart_e2e.py); one that
calls `staged` itself also gets a stage of its own (the shared one is taken down first).
Every module uses projects of its own, so none sees another's services or releases, and
each leaves the nodes' agents, Docker and nginx running.

The modules run in ORDER: a module under load leaves the log pipeline a backlog that held up
the next module's logs past its timeouts (seen when the stage was first shared), so those
that read `dockyard logs` come first, the ones that put the nodes under load last, and the
domains module at the very end (it removes a server from the inventory). A module not named
here runs after them: give it a place before the domains module if it uses the stage."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from dockyard.providers.images import Tarball
from tests.acme_server import Pebble, start_pebble
from tests.agent.conftest import base_tarball, require_the_real_stack
from tests.e2e.stage import TOKEN, ZONE, Stage, Stages, domain_settings, shared_stages
from tests.e2e.tls import cloudflare_process

__all__ = ["base_tarball"]
HERE = Path(__file__).parent
ORDER = ["test_firewall_e2e", "test_agent_restart_e2e", "test_logs_e2e", "test_stack_apps_e2e",
         "test_procfile_e2e", "test_reconcile_e2e", "test_deploy_e2e", "test_processes_e2e",
         "test_push_e2e", "test_stateful_e2e", "test_dashboard_e2e", "test_dashboard_app_e2e",
         "test_dashboard_servers_e2e", "test_dashboard_data_e2e", "test_node_loss_e2e",
         "test_domains_e2e", "test_watch_e2e"]


@pytest.fixture(scope="package")
def pebble() -> Iterator[Pebble]:
    """HTTP-01 checked on port 80 of the address a name resolves to (by default the first
    node)."""
    with start_pebble(80, default_ipv4="10.235.0.2") as server:
        yield server


@pytest.fixture(scope="package")
def cloudflare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with cloudflare_process(tmp_path_factory.mktemp("cloudflare") / "state.json", ZONE,
                            TOKEN) as base_url:
        yield base_url


@pytest.fixture(scope="package")  # down after the last end-to-end test
def stages(tmp_path_factory: pytest.TempPathFactory, base_tarball: Tarball, pebble: Pebble,
           cloudflare: str) -> Iterator[Stages]:
    require_the_real_stack()
    with shared_stages(lambda: tmp_path_factory.mktemp("stage"),
                       domain_settings(pebble, cloudflare)) as shared:
        yield shared


@pytest.fixture(scope="module")
def stage(stages: Stages) -> Stage:
    return stages.get()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests in ORDER of their modules, in the places they had among all
    tests (this hook sees the whole session's items); within a module, as written."""
    places = [i for i, item in enumerate(items) if item.path.parent == HERE]
    ours = sorted((items[i] for i in places), key=lambda item: _rank(item.path.stem))
    for place, item in zip(places, ours, strict=True):
        items[place] = item


def _rank(module: str) -> int:
    return ORDER.index(module) if module in ORDER else len(ORDER)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed end-to-end test shows the last lines of its control plane's logs (the stage's
    directory is gone, or rotated away, by the time anyone reads the run)."""
    report = yield
    stage = getattr(item, "funcargs", {}).get("stage")
    if report.failed and isinstance(stage, Stage):
        for name in ("api", "worker"):
            log = Path(stage.env["DOCKYARD_DATA_DIR"]) / "logs" / f"{name}.log"
            lines = log.read_text(errors="replace").splitlines()[-150:] if log.exists() else []
            report.sections.append((f"control plane {name}.log, last lines", "\n".join(lines)))
    return report
