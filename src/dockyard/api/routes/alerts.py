"""Notification channels, their deliveries, alerts and per-service alert rules."""

from __future__ import annotations

from typing import Literal

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import ObjectId, ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import alert_channels
from dockyard.models.alert_schemas import (
    AlertPublic,
    AlertRulePublic,
    AlertRuleSet,
    ChannelCreate,
    ChannelCreated,
    ChannelPublic,
    DeliveryPublic,
)

router = api_router(tags=["alerts"], responses=WRITE_RESPONSES)
CHANNELS = "/notification-channels"
RULES = "/projects/{project}/services/{service}/alert-rules"


@router.post(CHANNELS, status_code=201, summary="Add a notification channel (admins; a "
             "webhook's signing secret is generated and shown once)")
async def create_channel(body: ChannelCreate, platform: PlatformDep, actor: ActorDep
                         ) -> ChannelCreated:
    return await alert_channels.create_channel(platform, actor, body)


@router.get(CHANNELS, summary="List the workspace's notification channels")
async def list_channels(platform: PlatformDep, actor: ActorDep) -> list[ChannelPublic]:
    return await alert_channels.list_channels(platform, actor)


@router.delete(CHANNELS + "/{channel_id}", status_code=204,
               summary="Remove a notification channel (admins)")
async def delete_channel(channel_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> None:
    await alert_channels.delete_channel(platform, actor, channel_id)


@router.post(CHANNELS + "/{channel_id}/test", summary="Send a test notification now (admins)")
async def test_channel(channel_id: ObjectId, platform: PlatformDep, actor: ActorDep
                       ) -> DeliveryPublic:
    return await alert_channels.send_test(platform, actor, channel_id)


@router.get(CHANNELS + "/{channel_id}/deliveries", summary="A channel's deliveries, newest "
            "first (status, attempts, last error, response code)")
async def list_channel_deliveries(channel_id: ObjectId, platform: PlatformDep, actor: ActorDep
                          ) -> list[DeliveryPublic]:
    return await alert_channels.deliveries(platform, actor, channel_id)


@router.get("/alerts", summary="The workspace's alerts, newest first")
async def list_alerts(platform: PlatformDep, actor: ActorDep,
                      state: Literal["firing", "resolved"] | None = None) -> list[AlertPublic]:
    return await alert_channels.list_alerts(platform, actor, state)


@router.get(RULES, summary="A service's alert thresholds (5xx rate, p95)")
async def get_alert_rules(project: ProjectName, service: ServiceName, platform: PlatformDep,
                          actor: ActorDep) -> AlertRulePublic:
    return await alert_channels.get_rule(platform, actor, project, service)


@router.put(RULES, summary="Set a service's alert thresholds (null turns one off)")
async def set_alert_rules(project: ProjectName, service: ServiceName, body: AlertRuleSet,
                          platform: PlatformDep, actor: ActorDep) -> AlertRulePublic:
    return await alert_channels.set_rule(platform, actor, project, service, body)
