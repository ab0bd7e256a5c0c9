"""Auto-scaling: every `autoscale_seconds` each enabled policy is evaluated (core/
autoscale_rules.py decides) from the service's stored traffic or its containers' CPU, and the
servers' memory; a change goes through the `scale` path (a zero-downtime rollout that drains
before it stops a replica), as the member who set the policy. Each change, and each change
that could not be made, is recorded with its reason; nothing is recorded while steady.

A second API replica is harmless: a policy is evaluated by the one whose conditional UPDATE
of its `last_evaluated_at` succeeds."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import desc, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics, deployments, processes
from dockyard.core.authz import Actor
from dockyard.core.autoscale_rules import Decision, Load, Policy, Room, decide
from dockyard.core.platform import Platform
from dockyard.deploy.plan import site_name
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import Conflict, DockyardError
from dockyard.models.app_metrics import HostStats
from dockyard.models.autoscale_tables import AutoscaleDecision, AutoscalePolicy
from dockyard.models.base import utcnow
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.processes import ScaleRequest
from dockyard.models.tables import Membership, Placement, Project, Service, User

log = logging.getLogger("dockyard.autoscale")
NOT_A_MEMBER = "not scaled: policy owner no longer a member"
BUSY = "not scaled: a deployment of the service is running"
FRESH_SECONDS = 120  # the worker collects every server's figures every 5 s


@dataclass(frozen=True)
class Subject:
    """A policy's service as the autoscaler sees it at one evaluation."""

    policy_id: str
    workspace_id: str
    service_id: str
    user_id: str | None
    project: str
    service: str
    policy: Policy
    current: int
    last_change: datetime | None
    servers: list[str]
    memory_limit: int | None

    @property
    def site(self) -> str:
        return site_name(self.project, self.service)


async def run_forever(p: Platform, runner: DeployRunner) -> None:
    """Evaluate every enabled policy every `autoscale_seconds` while the API runs (0: off)."""
    interval = p.settings.autoscale_seconds
    while interval:
        try:
            await evaluate_all(p, runner)
        except Exception:  # the next round tries again; the API keeps serving
            log.exception("autoscale round failed")
        await asyncio.sleep(interval)


async def evaluate_all(p: Platform, runner: DeployRunner, now: datetime | None = None
                       ) -> list[Decision]:
    """One round: the decisions taken for the policies this process claimed."""
    now = now or utcnow()
    ids = await p.db.read(lambda s: _enabled(s))
    taken = [await _evaluate_one(p, runner, policy_id, now) for policy_id in ids]
    return [decision for decision in taken if decision is not None]


async def _evaluate_one(p: Platform, runner: DeployRunner, policy_id: str, now: datetime
                        ) -> Decision | None:
    try:
        return await evaluate(p, runner, policy_id, now)
    except Exception:  # one policy's failure leaves the others to be evaluated
        log.exception("autoscale policy %s could not be evaluated", policy_id)
        return None


async def _enabled(s: AsyncSession) -> list[str]:
    return list(await s.scalars(select(AutoscalePolicy.id).where(AutoscalePolicy.enabled)))


async def evaluate(p: Platform, runner: DeployRunner, policy_id: str, now: datetime
                   ) -> Decision | None:
    """Decide for one policy (None: another replica has it, or nothing to decide on) and
    act on the decision."""
    if not await claim(p, policy_id, now):
        return None
    subject = await p.db.read(lambda s: _subject(s, policy_id))
    if subject is None or not subject.servers:
        return None
    hosts = fresh(await app_metrics.latest_host_stats(p), now)
    load = await _load(p, subject, hosts)
    decision = decide(subject.policy, subject.current, load, room(subject, hosts),
                      subject.last_change, now)
    if not decision.steady:
        await _record(p, subject, decision, await _act(p, runner, subject, decision, now), now)
    return decision


async def claim(p: Platform, policy_id: str, now: datetime) -> bool:
    """Whether this process evaluates the policy now: nobody did in the last half interval."""
    before = now - timedelta(seconds=p.settings.autoscale_seconds / 2)

    async def tx(s: AsyncSession) -> int:
        result = await s.execute(
            update(AutoscalePolicy).where(
                AutoscalePolicy.id == policy_id, AutoscalePolicy.enabled,
                or_(AutoscalePolicy.last_evaluated_at.is_(None),
                    AutoscalePolicy.last_evaluated_at < before))
            .values(last_evaluated_at=now).execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    return await p.db.write(tx) == 1


async def _subject(s: AsyncSession, policy_id: str) -> Subject | None:
    row = await s.get(AutoscalePolicy, policy_id)
    service = await s.get(Service, row.service_id) if row else None
    if row is None or service is None:
        return None
    project = await s.get(Project, service.project_id)
    servers = await s.scalars(select(Placement.server_id).where(
        Placement.service_id == service.id).order_by(Placement.server_id))
    return Subject(
        row.id, row.workspace_id, service.id, row.user_id, project.name if project else "",
        service.name, policy_of(row), service.config.get("scale", {}).get("web", 1),
        row.last_scaled_at, list(servers), await _memory_limit(s, service))


def policy_of(row: AutoscalePolicy) -> Policy:
    return Policy(row.min_replicas, row.max_replicas, row.target_rps, row.target_cpu,
                  row.cooldown_seconds)


async def _memory_limit(s: AsyncSession, service: Service) -> int | None:
    try:
        params = DeploymentPlan.from_row(await deployments.live_release(s, service)).params
    except DockyardError:
        return None
    return params.memory_mb * 1024 * 1024 if params.memory_mb else None


async def _load(p: Platform, subject: Subject, hosts: dict[str, HostStats]) -> Load:
    if subject.policy.target_rps is not None:
        window = timedelta(seconds=p.settings.autoscale_window_seconds)
        traffic = await app_metrics.service_traffic(p, subject.service_id, window)
        return Load(traffic.rate, len(subject.servers))
    cpu = sum(usage.cpu_percent for server in subject.servers if server in hosts
              for usage in hosts[server].services if usage.service == subject.site)
    return Load(cpu, len(subject.servers))


def fresh(hosts: dict[str, HostStats], now: datetime) -> dict[str, HostStats]:
    """The figures of the servers that reported within FRESH_SECONDS."""
    return {server: h for server, h in hosts.items() if now.timestamp() - h.at <= FRESH_SECONDS}


def room(subject: Subject, hosts: dict[str, HostStats]) -> Room:
    """The least free memory on the service's servers (None if one has not reported), and
    one replica's memory: the service's limit, or what its containers use on average."""
    if any(server not in hosts for server in subject.servers):
        return Room(None, subject.memory_limit)
    found = [hosts[server] for server in subject.servers]
    free = min(h.memory_total_bytes - h.memory_used_bytes for h in found)
    used = [u.memory_bytes // u.containers for h in found for u in h.services
            if u.service == subject.site and u.containers]
    return Room(free, subject.memory_limit or max(used, default=None))


async def _act(p: Platform, runner: DeployRunner, subject: Subject, decision: Decision,
               now: datetime) -> str | AutoscaleDecision:
    """What became of the decision: the deployment started, or why none was."""
    if decision.blocked:
        return decision.blocked
    actor = await p.db.read(lambda s: owner_of(s, subject))
    if actor is None:
        return NOT_A_MEMBER
    body = ScaleRequest(scale={"web": decision.to})
    try:
        started = await processes.start_scale(p, runner, actor, subject.project,
                                              subject.service, body)
    except Conflict:
        return BUSY
    except DockyardError as exc:
        return f"not scaled: {exc}"
    await p.db.write(lambda s: _scaled(s, subject.policy_id, now))
    return AutoscaleDecision(outcome=f"started deployment {started[:8]}",
                             deployment_id=started)


async def owner_of(s: AsyncSession, subject: Subject) -> Actor | None:
    """The member who set the policy, with their role of today (None: no longer one)."""
    if subject.user_id is None:
        return None
    membership = await s.scalar(select(Membership).where(
        Membership.workspace_id == subject.workspace_id, Membership.user_id == subject.user_id))
    user = await s.get(User, subject.user_id)
    if membership is None or user is None or not user.is_active:
        return None
    return Actor(subject.user_id, subject.workspace_id, membership.role)


async def _scaled(s: AsyncSession, policy_id: str, now: datetime) -> None:
    await s.execute(update(AutoscalePolicy).where(AutoscalePolicy.id == policy_id)
                    .values(last_scaled_at=now).execution_options(synchronize_session=False))


async def _record(p: Platform, subject: Subject, decision: Decision,
                  outcome: str | AutoscaleDecision, now: datetime) -> None:
    """Keep the decision; a blocked one only when it differs from the last one kept (a
    cool-down or a memory cap would otherwise be recorded every round)."""
    row = outcome if isinstance(outcome, AutoscaleDecision) else AutoscaleDecision(
        outcome=outcome)
    row.workspace_id, row.service_id, row.created_at = (
        subject.workspace_id, subject.service_id, now)
    row.from_replicas, row.to_replicas, row.reason = decision.current, decision.to, decision.reason

    async def tx(s: AsyncSession) -> None:
        if row.deployment_id is None and await _repeats(s, row):
            return
        s.add(row)

    await p.db.write(tx)


async def _repeats(s: AsyncSession, row: AutoscaleDecision) -> bool:
    last = await s.scalar(select(AutoscaleDecision).where(
        AutoscaleDecision.service_id == row.service_id).order_by(desc(AutoscaleDecision.id))
        .limit(1))
    return last is not None and (last.from_replicas, last.to_replicas, _kind(last.outcome)) \
        == (row.from_replicas, row.to_replicas, _kind(row.outcome))


def _kind(outcome: str) -> str:
    """Memory caps are alike whatever the free memory was at the time."""
    return "capped by memory" if outcome.startswith("capped by memory") else outcome
