"""A workspace's notification channels (admins change them, members read them), their
deliveries, its alerts and the per-service traffic thresholds. A webhook's signing secret is
Dockyard's own: generated here, shown once, stored encrypted."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.alert_send import send
from dockyard.core.alerts import record, target_of
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict, NotFound
from dockyard.models.alert_schemas import (
    AlertPublic,
    AlertRulePublic,
    AlertRuleSet,
    ChannelCreate,
    ChannelCreated,
    ChannelPublic,
    DeliveryPublic,
    Notice,
    shown_target,
)
from dockyard.models.alert_tables import Alert, AlertDelivery, AlertRule, NotificationChannel
from dockyard.models.base import new_id, utcnow

DELIVERIES_SHOWN = 100


async def create_channel(p: Platform, actor: Actor, body: ChannelCreate) -> ChannelCreated:
    if body.kind == "email" and not p.settings.smtp_host:
        raise Conflict("email channels need an SMTP server: set DOCKYARD_SMTP_HOST (and "
                       "DOCKYARD_SMTP_FROM) on the control plane first")
    secret = secrets.token_urlsafe(32) if body.kind == "webhook" else None

    async def tx(s: AsyncSession) -> ChannelCreated:
        actor.require(Permission.MANAGE_SERVERS)
        row = NotificationChannel(workspace_id=actor.workspace_id, kind=body.kind,
                                  target=shown_target(body.kind, body.target),
                                  target_ciphertext=p.box.encrypt(body.target),
                                  secret_ciphertext=p.box.encrypt(secret) if secret else "")
        s.add(row)
        await s.flush()
        return ChannelCreated(**ChannelPublic.model_validate(row).model_dump(), secret=secret)

    return await p.db.write(tx, info=actor.audit_info)


async def list_channels(p: Platform, actor: Actor) -> list[ChannelPublic]:
    async def tx(s: AsyncSession) -> list[ChannelPublic]:
        actor.require(Permission.READ)
        query = select(NotificationChannel).where(
            NotificationChannel.workspace_id == actor.workspace_id)
        return [ChannelPublic.model_validate(r) for r in
                await s.scalars(query.order_by(NotificationChannel.created_at))]

    return await p.db.read(tx)


async def _channel(s: AsyncSession, actor: Actor, channel_id: str) -> NotificationChannel:
    row = await s.get(NotificationChannel, channel_id)
    if row is None or row.workspace_id != actor.workspace_id:
        raise NotFound("notification channel", channel_id)
    return row


async def delete_channel(p: Platform, actor: Actor, channel_id: str) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await _channel(s, actor, channel_id)
        actor.require(Permission.MANAGE_SERVERS)
        await delete_recorded(s, row)

    await p.db.write(tx, info=actor.audit_info)


async def send_test(p: Platform, actor: Actor, channel_id: str) -> DeliveryPublic:
    """Send a test notice now and record it as a delivery of the channel."""
    notice = Notice(event="test", alert_id=None, key="test", kind="test", severity="info",
                    subject="Dockyard test notification", detail="This channel works.",
                    state="resolved", at=utcnow())

    async def tx(s: AsyncSession) -> tuple[NotificationChannel, str]:
        row = await _channel(s, actor, channel_id)
        actor.require(Permission.MANAGE_SERVERS)
        delivery = AlertDelivery(id=new_id(), workspace_id=actor.workspace_id,
                                 channel_id=row.id, event="test",
                                 message=notice.model_dump(mode="json"), attempts=0)
        s.add(delivery)
        return row, delivery.id

    channel, delivery_id = await p.db.write(tx)
    sent = await send(p.settings, await target_of(p, channel), notice)
    await record(p, delivery_id, sent, final=True)
    return await p.db.read(lambda s: _delivery(s, delivery_id))


async def _delivery(s: AsyncSession, delivery_id: str) -> DeliveryPublic:
    return public_delivery(await s.get_one(AlertDelivery, delivery_id))


def public_delivery(row: AlertDelivery) -> DeliveryPublic:
    notice = Notice.model_validate(row.message)
    return DeliveryPublic.model_validate(row).model_copy(update={"subject": notice.subject})


async def deliveries(p: Platform, actor: Actor, channel_id: str) -> list[DeliveryPublic]:
    """The channel's newest deliveries first."""

    async def tx(s: AsyncSession) -> list[DeliveryPublic]:
        actor.require(Permission.READ)
        await _channel(s, actor, channel_id)
        query = (select(AlertDelivery).where(AlertDelivery.channel_id == channel_id)
                 .order_by(AlertDelivery.created_at.desc()).limit(DELIVERIES_SHOWN))
        return [public_delivery(r) for r in await s.scalars(query)]

    return await p.db.read(tx)


async def list_alerts(p: Platform, actor: Actor, state: str | None) -> list[AlertPublic]:
    async def tx(s: AsyncSession) -> list[AlertPublic]:
        actor.require(Permission.READ)
        query = select(Alert).where(Alert.workspace_id == actor.workspace_id)
        if state is not None:
            query = query.where(Alert.state == state)
        return [AlertPublic.model_validate(r) for r in
                await s.scalars(query.order_by(Alert.first_at.desc()).limit(200))]

    return await p.db.read(tx)


async def get_rule(p: Platform, actor: Actor, project: str, service: str) -> AlertRulePublic:
    async def tx(s: AsyncSession) -> AlertRulePublic:
        actor.require(Permission.READ)
        row = await service_named(s, actor, project, service)
        rule = await s.scalar(select(AlertRule).where(AlertRule.service_id == row.id))
        values = AlertRuleSet() if rule is None else AlertRuleSet(
            max_5xx_rate=rule.max_5xx_rate, max_p95_ms=rule.max_p95_ms,
            window_seconds=rule.window_seconds)
        return AlertRulePublic(project=project, service=service, **values.model_dump())

    return await p.db.read(tx)


async def set_rule(p: Platform, actor: Actor, project: str, service: str, body: AlertRuleSet
                   ) -> AlertRulePublic:
    async def tx(s: AsyncSession) -> AlertRulePublic:
        row = await service_named(s, actor, project, service)
        actor.require(Permission.WRITE)
        rule = await s.scalar(select(AlertRule).where(AlertRule.service_id == row.id))
        if rule is None:
            rule = AlertRule(workspace_id=actor.workspace_id, service_id=row.id)
            s.add(rule)
        rule.max_5xx_rate, rule.max_p95_ms = body.max_5xx_rate, body.max_p95_ms
        rule.window_seconds = body.window_seconds
        return AlertRulePublic(project=project, service=service, **body.model_dump())

    return await p.db.write(tx, info=actor.audit_info)
