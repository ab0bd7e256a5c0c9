"""Alerts: conditions and events worth a person's attention, fired once, repeated at a bounded
rate while they last, resolved when they end, and delivered to the workspace's notification
channels through the queue. The worker's `alerts.evaluate` job (every 10 s) compares what the
sources see (core/alert_conditions.py) with the firing alerts; each event it decides becomes a
delivery row per channel and an outbox job in the same transaction, so a delivery survives a
restart and Redis being down. The `alerts.deliver` job sends it; a failure is recorded on the
row and retried by the queue with exponential backoff. Resolved alerts and deliveries are
pruned by the `retention.prune` job (core/retention.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import logcollect
from dockyard.core.alert_conditions import SOURCES, Condition
from dockyard.core.alert_send import Sent, Target, send
from dockyard.core.platform import Platform
from dockyard.kernel.queue import JobContext, Tasks, add_event
from dockyard.kernel.settings import Settings
from dockyard.models.alert_schemas import AlertEvent, Notice
from dockyard.models.alert_tables import Alert, AlertDelivery, NotificationChannel
from dockyard.models.base import new_id, utcnow

log = logging.getLogger("dockyard.alerts")
EVALUATE_TASK = "alerts.evaluate"
DELIVER_TASK = "alerts.deliver"
MAX_ATTEMPTS = 10  # retried after 2, 4, 8 ... s, at most 10 min apart
RETRY_BASE = 2.0
RETRY_CAP = 600.0


class DeliveryFailed(Exception):
    """The channel did not take the notice; the queue retries the job."""


@dataclass
class Evaluated:
    fired: int = 0
    repeated: int = 0
    resolved: int = 0


async def evaluate(p: Platform, now: datetime | None = None) -> Evaluated:
    """Fire, repeat and resolve alerts from what the sources see now."""
    now = now or utcnow()
    found: list[Condition] = []
    covered: set[str] = set()
    for source in SOURCES:
        try:
            found += await source.collect(p, now)
        except Exception as exc:  # one source's failure leaves its alerts as they are
            log.warning("alert source %s failed: %s", "/".join(source.kinds), exc)
            continue
        covered.update(source.kinds)

    async def decide(s: AsyncSession) -> Plan:
        return await _decide(s, p.settings, found, covered, now)

    async def carry_out(s: AsyncSession) -> Evaluated:
        return await _carry_out(s, await decide(s), now)

    if (await p.db.read(decide)).empty:  # the usual case: no write, no SQLite write lock
        return Evaluated()
    return await p.db.write(carry_out)


@dataclass(frozen=True)
class Plan:
    opened: list[Condition]
    repeated: list[tuple[Alert, Condition]]
    resolved: list[Alert]

    @property
    def empty(self) -> bool:
        return not (self.opened or self.repeated or self.resolved)


async def _decide(s: AsyncSession, settings: Settings, found: Sequence[Condition],
                  covered: set[str], now: datetime) -> Plan:
    """What to fire (conditions new, one-shot events not seen), to repeat and to resolve."""
    firing = {(a.workspace_id, a.key): a for a in await s.scalars(
        select(Alert).where(Alert.state == "firing", Alert.kind.in_(covered)))}
    done_once = await _once_keys(s, [c.key for c in found if c.once])
    plan = Plan([], [], [])
    for condition in found:
        ident = (condition.workspace_id, condition.key)
        if ident not in (done_once if condition.once else firing):
            plan.opened.append(condition)
        elif not condition.once and _repeat_due(firing[ident], settings, now):
            plan.repeated.append((firing[ident], condition))
    seen = {(c.workspace_id, c.key) for c in found}
    plan.resolved.extend(alert for ident, alert in firing.items() if ident not in seen)
    return plan


async def _carry_out(s: AsyncSession, plan: Plan, now: datetime) -> Evaluated:
    channels = await _channels(s)
    for condition in plan.opened:
        await _open(s, channels, condition, now, once=condition.once)
    for alert, condition in plan.repeated:
        await _repeat(s, channels, alert, condition, now)
    for alert in plan.resolved:
        await _resolve(s, channels, alert, now)
    return Evaluated(len(plan.opened), len(plan.repeated), len(plan.resolved))


async def _channels(s: AsyncSession) -> dict[str, list[str]]:
    by_workspace: dict[str, list[str]] = {}
    for workspace_id, id_ in await s.execute(
            select(NotificationChannel.workspace_id, NotificationChannel.id)):
        by_workspace.setdefault(workspace_id, []).append(id_)
    return by_workspace


async def _once_keys(s: AsyncSession, keys: list[str]) -> set[tuple[str, str]]:
    if not keys:
        return set()
    query = select(Alert.workspace_id, Alert.key).where(Alert.once, Alert.key.in_(keys))
    return {(w, k) for w, k in await s.execute(query)}


def _repeat_due(alert: Alert, settings: Settings, now: datetime) -> bool:
    every = timedelta(minutes=settings.alert_repeat_minutes)
    return alert.repeats < settings.alert_max_repeats and now - alert.last_sent_at >= every


async def _open(s: AsyncSession, channels: dict[str, list[str]], condition: Condition,
                now: datetime, *, once: bool) -> None:
    alert = Alert(id=new_id(), workspace_id=condition.workspace_id, key=condition.key,
                  kind=condition.kind, severity=condition.severity,
                  subject=condition.subject[:500], detail=condition.detail, once=once,
                  state="resolved" if once else "firing", first_at=now, last_sent_at=now,
                  resolved_at=now if once else None, repeats=0)
    s.add(alert)
    await s.flush()
    await _enqueue(s, channels, alert, "fired", now)


async def _repeat(s: AsyncSession, channels: dict[str, list[str]], alert: Alert,
                  condition: Condition, now: datetime) -> None:
    alert.repeats, alert.last_sent_at = alert.repeats + 1, now
    alert.subject, alert.detail = condition.subject[:500], condition.detail
    await _enqueue(s, channels, alert, "repeat", now)


async def _resolve(s: AsyncSession, channels: dict[str, list[str]], alert: Alert,
                   now: datetime) -> None:
    alert.state, alert.resolved_at, alert.last_sent_at = "resolved", now, now
    await _enqueue(s, channels, alert, "resolved", now)


def notice_of(alert: Alert, event: AlertEvent, now: datetime) -> Notice:
    return Notice(event=event, alert_id=alert.id, key=alert.key, kind=alert.kind,
                  severity=alert.severity,
                  subject=alert.subject, detail=alert.detail,
                  state="firing" if event in ("fired", "repeat") else "resolved", at=now)


async def _enqueue(s: AsyncSession, channels: dict[str, list[str]], alert: Alert,
                   event: AlertEvent, now: datetime) -> None:
    message = notice_of(alert, event, now).model_dump(mode="json")
    for channel_id in channels.get(alert.workspace_id, []):
        delivery = AlertDelivery(id=new_id(), workspace_id=alert.workspace_id,
                                 channel_id=channel_id, alert_id=alert.id, event=event,
                                 message=message, status="pending", attempts=0)
        s.add(delivery)
        await add_event(s, DELIVER_TASK, {"delivery_id": delivery.id},
                        idempotency_key=f"alert-delivery:{delivery.id}")


async def target_of(p: Platform, channel: NotificationChannel) -> Target:
    secret = p.box.decrypt(channel.secret_ciphertext) if channel.secret_ciphertext else ""
    return Target(channel.kind, p.box.decrypt(channel.target_ciphertext), secret)


async def deliver(p: Platform, delivery_id: str, *, final: bool) -> Sent | None:
    """Send one delivery (None: gone, or sent already); a failure raises DeliveryFailed after
    it is recorded, so that the queue retries it."""
    loaded = await p.db.read(lambda s: _load(s, delivery_id))
    if loaded is None:
        return None
    channel, message = loaded
    sent = await send(p.settings, await target_of(p, channel), Notice.model_validate(message))
    await record(p, delivery_id, sent, final=final)
    if not sent.ok:
        raise DeliveryFailed(f"delivery {delivery_id}: {sent.error}")
    return sent


async def _load(s: AsyncSession, delivery_id: str
                ) -> tuple[NotificationChannel, dict[str, Any]] | None:
    delivery = await s.get(AlertDelivery, delivery_id)
    if delivery is None or delivery.status == "sent":
        return None
    channel = await s.get_one(NotificationChannel, delivery.channel_id)
    return channel, delivery.message


async def record(p: Platform, delivery_id: str, sent: Sent, *, final: bool) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await s.get_one(AlertDelivery, delivery_id)
        row.attempts += 1
        row.response_code, row.last_error = sent.code, sent.error
        row.status = "sent" if sent.ok else ("failed" if final else "retrying")
        row.sent_at = utcnow() if sent.ok else None

    await p.db.write(tx)


TASKS = Tasks()
TASKS.every(EVALUATE_TASK, "* * * * * */10", EVALUATE_TASK)


@TASKS.task(EVALUATE_TASK, max_attempts=1, coalesce=True)
async def evaluate_job(context: JobContext, payload: dict[str, Any]) -> None:
    await evaluate(logcollect._platform(context))


@TASKS.task(DELIVER_TASK, max_attempts=MAX_ATTEMPTS, retry_base=RETRY_BASE, retry_cap=RETRY_CAP)
async def deliver_job(context: JobContext, payload: dict[str, Any]) -> None:
    attempt = context.job.attempt if context.job else MAX_ATTEMPTS
    await deliver(logcollect._platform(context), str(payload["delivery_id"]),
                  final=attempt >= MAX_ATTEMPTS)
