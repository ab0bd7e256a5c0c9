"""The reconciler's decision as a pure function: what one server should run and what runs
there in, the exact corrections and drift out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.agent.models import ContainerSummary, PublishedPort, Site, Upstream
from dockyard.deploy import plan
from dockyard.deploy.converge import (
    Decision,
    Found,
    Grace,
    RecreateMissing,
    Release,
    RemoveSite,
    RemoveStray,
    RestoreSite,
    ServiceWanted,
    Wanted,
    decide,
)
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.enums import DeploymentStatus
from dockyard.models.reconcile import Drift

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
LIVE = "1a2b3c4d" + "0" * 24
OLD = "9f8e7d6c" + "0" * 24
FAILED = "4c650e15" + "0" * 24
FLYING = "77777777" + "0" * 24
SITE = "shop-web"
STATUSES = {LIVE: DeploymentStatus.SUCCEEDED, OLD: DeploymentStatus.SUCCEEDED,
            FAILED: DeploymentStatus.FAILED, FLYING: DeploymentStatus.RUNNING}


def release(deployment_id: str = LIVE, *, servers: tuple[str, ...] = ("s1",),
            commands: dict[str, list[str]] | None = None, scale: dict[str, int] | None = None,
            only: str | None = None) -> Release:
    return Release(deployment_id, DeploymentPlan.model_validate({
        "source": {"kind": "image", "image": "registry.test:5000/hello:1"},
        "image": f"registry.test:5000/ws/shop/web:deploy_{deployment_id[:8]}",
        "params": {"scale": scale or {}}, "servers": list(servers), "site": SITE,
        "hosts": ["web.shop.localhost"], "processes": {"commands": commands or {}},
        "only": only}), {"GREETING": "hi"})


def container(deployment_id: str, kind: str = "web", replica: int = 1, *, port: int | None = None,
              state: str = "running", labels: dict[str, str] | None = None) -> ContainerSummary:
    name = plan.container_name(SITE, deployment_id, kind, replica)
    ports = [PublishedPort(container_port=8000, host_port=port, host_ip="127.0.0.1")] if port \
        else []
    return ContainerSummary(id=name, name=name, image="img", state=state, status=state, ports=ports,
                            labels={"dockyard.service": SITE, plan.DEPLOYMENT_LABEL: deployment_id,
                                    plan.PROCESS_TYPE_LABEL: kind, plan.REPLICA_LABEL: str(replica),
                                    **(labels or {})})


def site(*ports: int) -> Site:
    return plan.site_for(SITE, ["web.shop.localhost"], list(ports))


def wanted(*releases: Release, in_flight: tuple[str, ...] = ()) -> Wanted:
    service = ServiceWanted("shop/web", SITE, releases, in_flight)
    return Wanted("s1", (service,), STATUSES)


def found(*containers: ContainerSummary, sites: tuple[Site, ...] = ()) -> Found:
    return Found(containers, sites)


def grace(seconds: float = 0, **first_seen: datetime) -> Grace:
    return Grace(NOW, timedelta(seconds=seconds), first_seen)


def removal(name: str, of: str) -> RemoveStray:
    return RemoveStray(name, "removed", "remove", f"stray container {name} of {of}")


def spec_of(live: Release, kind: str = "web", replica: int = 1) -> RecreateMissing:
    process = next(p for p in plan.processes_of(live.plan.processes, live.plan.params, kind)
                   if p.replica == replica)
    env = plan.release_env(live.env, live.plan.params, live.id, "shop/web")
    spec = plan.container_spec(SITE, live.id, plan.parse_image(live.plan.image), env,
                               live.plan.params, process)
    return RecreateMissing(spec.name, "re-created", "re-create",
                           f"missing container {spec.name} ({kind}.{replica}) of live release "
                           f"{live.id[:8]}", spec=spec)


CLEAN = Decision((), ())


def test_a_node_running_exactly_the_live_release_needs_nothing() -> None:
    assert decide(wanted(release()), found(container(LIVE, port=4001), sites=(site(4001),)),
                  grace()) == CLEAN


def test_a_container_of_a_failed_deployment_is_removed_once_its_grace_is_over() -> None:
    stray = container(FAILED, port=5001)
    name = stray.name
    decision = decide(wanted(release()), found(container(LIVE, port=4001), stray,
                                               sites=(site(4001),)), grace())
    assert decision == Decision(
        (removal(name, "failed deployment 4c650e15"),), ())
    assert decision.corrections[0].message == (
        "removed stray container shop-web-4c650e15 of failed deployment 4c650e15")


def test_a_fresh_stray_is_drift_with_the_time_it_was_first_seen() -> None:
    stray = container(FAILED)
    seen = NOW - timedelta(seconds=30)
    assert decide(wanted(release()), found(container(LIVE, port=4001), stray,
                                           sites=(site(4001),)),
                  grace(120, **{stray.name: seen})) == Decision((), (Drift(
                      subject=stray.name, since=seen,
                      message="stray container shop-web-4c650e15 of failed deployment "
                              "4c650e15, removed after the grace period"),))


def test_a_stray_never_seen_before_starts_its_grace_now() -> None:
    stray = container(FAILED)
    decision = decide(wanted(release()), found(container(LIVE, port=4001), stray,
                                               sites=(site(4001),)), grace(120))
    assert [(d.subject, d.since) for d in decision.drift] == [(stray.name, NOW)]
    assert decision.corrections == ()


def test_a_stray_seen_for_exactly_the_grace_period_goes() -> None:
    stray = container(OLD)
    decision = decide(wanted(release()), found(container(LIVE, port=4001), stray,
                                               sites=(site(4001),)),
                      grace(120, **{stray.name: NOW - timedelta(seconds=120)}))
    assert decision == Decision((removal(stray.name, "old release 9f8e7d6c"),), ())


def test_strays_are_named_by_what_they_belong_to() -> None:
    unknown = "abcdef01" + "0" * 24
    unlabeled = container(LIVE, "web", 9).model_copy(update={
        "name": "shop-web-hand", "labels": {"dockyard.service": SITE}})
    decision = decide(wanted(release()), found(
        container(LIVE, port=4001), container(unknown), unlabeled, sites=(site(4001),)),
        grace())
    assert [c.message for c in decision.corrections] == [
        "removed stray container shop-web-abcdef01 of unknown deployment abcdef01",
        "removed stray container shop-web-hand of unknown deployment (none)"]


def test_nothing_of_a_service_with_a_deployment_in_flight_is_touched() -> None:
    decision = decide(wanted(release(), in_flight=(FLYING,)),
                      found(container(FLYING, port=6001), container(FAILED), sites=(site(6001),)),
                      grace())
    assert decision == CLEAN


def test_a_container_of_any_deployment_in_flight_is_never_a_stray() -> None:
    other = ServiceWanted("shop/api", "shop-api", (), (FLYING,))
    misplaced = container(FLYING)
    desired = Wanted("s1", (ServiceWanted("shop/web", SITE, (release(),)), other), STATUSES)
    assert decide(desired, found(container(LIVE, port=4001), misplaced, sites=(site(4001),)),
                  grace()) == CLEAN


def test_one_off_runs_and_other_services_containers_are_left_alone() -> None:
    one_off = container(LIVE, "run", 1, labels={"dockyard.one-off": "true"})
    foreign = container(FAILED, labels={"dockyard.service": "someone-else"})
    assert decide(wanted(release()), found(container(LIVE, port=4001), one_off, foreign,
                                           sites=(site(4001),)), grace()) == CLEAN


def test_a_service_with_no_release_has_only_strays() -> None:
    decision = decide(wanted(), found(container(FAILED, port=5001)), grace())
    assert decision == Decision((removal("shop-web-4c650e15", "failed deployment 4c650e15"),),
                                ())


def test_a_service_whose_live_release_is_not_on_this_server_has_only_strays() -> None:
    elsewhere = release(servers=("s2",))
    decision = decide(wanted(elsewhere), found(container(LIVE, port=4001)), grace())
    assert decision == Decision((removal("shop-web-1a2b3c4d", "old release 1a2b3c4d"),), ())


ORPHAN = RemoveSite(SITE, "removed", "remove",
                    "site shop-web: no live release of shop/web runs here")


def test_a_site_left_where_the_service_no_longer_runs_goes_with_its_last_container() -> None:
    elsewhere = release(servers=("s2",))
    decision = decide(wanted(elsewhere), found(container(OLD, port=5001), sites=(site(5001),)),
                      grace())
    assert decision == Decision((removal("shop-web-9f8e7d6c", "old release 9f8e7d6c"), ORPHAN),
                                ())
    assert decision.corrections[1].message == (
        "removed site shop-web: no live release of shop/web runs here")


def test_a_site_stays_while_a_container_it_may_serve_waits_out_its_grace() -> None:
    decision = decide(wanted(release(servers=("s2",))),
                      found(container(OLD, port=5001), sites=(site(5001),)), grace(120))
    assert (decision.corrections, [d.subject for d in decision.drift]) == (
        (), ["shop-web-9f8e7d6c"])


def test_a_site_of_a_service_never_released_here_is_removed() -> None:
    assert decide(wanted(), found(sites=(site(5001),)), grace()) == Decision((ORPHAN,), ())


def test_a_missing_container_of_the_live_release_is_recreated_from_its_spec() -> None:
    live = release(commands={"worker": ["python3", "worker.py"]})
    decision = decide(wanted(live), found(container(LIVE, port=4001), sites=(site(4001),)),
                      grace())
    assert decision == Decision((spec_of(live, "worker"),), ())
    spec = spec_of(live, "worker").spec
    assert spec is not None
    assert (spec.name, spec.command, spec.env["GREETING"], spec.env["DOCKYARD_PROCESS"],
            spec.ports) == ("shop-web-1a2b3c4d-worker-1", ["python3", "worker.py"], "hi",
                            "worker.1", [])


def test_missing_web_replicas_come_first_and_the_site_waits_for_them() -> None:
    live = release(scale={"web": 2})
    decision = decide(wanted(live), found(container(LIVE, port=4001), container(OLD, port=5001),
                                          sites=(site(5001),)), grace())
    assert decision == Decision((spec_of(live, "web", 2),
                                 removal("shop-web-9f8e7d6c", "old release 9f8e7d6c")), ())


def test_a_missing_site_is_restored_at_the_live_ports() -> None:
    decision = decide(wanted(release(scale={"web": 2})),
                      found(container(LIVE, port=4001), container(LIVE, "web", 2, port=4002)),
                      grace())
    assert decision == Decision((RestoreSite(
        SITE, "restored", "restore",
        "missing site shop-web at ports 4001, 4002 of live release 1a2b3c4d",
        site=site(4001, 4002)),), ())


def test_a_site_pointing_at_a_failed_deployment_is_repointed_before_the_stray_goes() -> None:
    decision = decide(wanted(release()), found(container(LIVE, port=4001),
                                               container(FAILED, port=5001),
                                               sites=(site(5001),)), grace())
    assert decision == Decision((
        RestoreSite(SITE, "re-pointed", "re-point",
                    "site shop-web at port 4001 of live release 1a2b3c4d (it pointed at "
                    "port 5001)", site=site(4001)),
        removal("shop-web-4c650e15", "failed deployment 4c650e15")), ())


def test_a_site_is_only_pointed_at_running_web_containers() -> None:
    live = release(scale={"web": 2})
    decision = decide(wanted(live), found(container(LIVE, port=4001),
                                          container(LIVE, "web", 2, state="exited"),
                                          sites=(site(4001, 4002),)), grace())
    assert [c.message for c in decision.corrections] == [
        "re-pointed site shop-web at port 4001 of live release 1a2b3c4d (it pointed at "
        "ports 4001, 4002)"]


def test_a_site_with_no_running_live_web_container_is_left_as_it_is() -> None:
    assert decide(wanted(release()), found(container(LIVE, state="exited"),
                                           sites=(site(4001),)), grace()) == CLEAN


def test_a_site_keeps_its_hosts_from_the_live_release() -> None:
    other_hosts = Site(service=SITE, server_names=["old.example.com"],
                       upstreams=[Upstream(host="127.0.0.1", port=4001)])
    assert decide(wanted(release()), found(container(LIVE, port=4001), sites=(other_hosts,)),
                  grace()) == CLEAN


def test_a_restart_of_one_type_owns_that_type_and_the_full_release_the_others() -> None:
    commands = {"worker": ["python3", "worker.py"]}
    full = release(OLD, commands=commands)
    restart = release(LIVE, commands=commands, only="worker")
    decision = decide(wanted(restart, full), found(
        container(OLD, port=4001), container(OLD, "worker"), container(LIVE, "worker"),
        sites=(site(4001),)), grace())
    assert decision == Decision(
        (removal("shop-web-9f8e7d6c-worker-1", "old release 9f8e7d6c"),), ())


def test_a_type_dropped_from_the_procfile_is_no_longer_expected() -> None:
    old = release(OLD, commands={"worker": ["w"]})
    live = release(LIVE)
    decision = decide(wanted(live, old), found(container(LIVE, port=4001),
                                               container(OLD, "worker"), sites=(site(4001),)),
                      grace())
    assert decision == Decision(
        (removal("shop-web-9f8e7d6c-worker-1", "old release 9f8e7d6c"),), ())


def test_a_correction_that_fails_says_what_it_could_not_do() -> None:
    correction = removal("shop-web-4c650e15", "failed deployment 4c650e15")
    assert correction.failure("the node agent could not be reached") == (
        "could not remove stray container shop-web-4c650e15 of failed deployment 4c650e15: "
        "the node agent could not be reached")


def test_a_site_gets_the_names_the_service_has_today() -> None:
    today = ServiceWanted("shop/web", SITE, (release(),), (),
                          ("web.shop.localhost", "shop.example.com"))
    decision = decide(Wanted("s1", (today,), STATUSES),
                      found(container(LIVE, port=4001), sites=(site(4001),)), grace())
    renamed = plan.site_for(SITE, ["web.shop.localhost", "shop.example.com"], [4001])
    assert decision == Decision((RestoreSite(
        SITE, "renamed", "rename", "site shop-web to web.shop.localhost, shop.example.com",
        site=renamed),), ())


def test_a_restored_site_has_the_names_of_today_not_those_of_the_release() -> None:
    today = ServiceWanted("shop/web", SITE, (release(),), (), ("web.shop.localhost", "a.test.com"))
    decision = decide(Wanted("s1", (today,), STATUSES), found(container(LIVE, port=4001)),
                      grace())
    restored = decision.corrections[0]
    assert isinstance(restored, RestoreSite)
    assert restored.site is not None
    assert restored.site.server_names == ["web.shop.localhost", "a.test.com"]
