"""Closed vocabularies shared by tables, schemas and logic."""

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class ServiceKind(StrEnum):
    APP = "app"
    REDIS = "redis"
    POSTGRES = "postgres"


class ServerStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DEGRADED = "degraded"  # the agent answers, but its node does not serve (reason kept)
    UNREACHABLE = "unreachable"
    DECOMMISSIONED = "decommissioned"
    PROVISIONING = "provisioning"  # its droplet is being made; its agent does not answer yet
    FAILED = "failed"  # provisioning failed (reason kept); its droplet was destroyed


# Servers the health poller leaves alone: provisioning sets their status itself.
UNPOLLED_SERVER_STATUSES = (ServerStatus.DECOMMISSIONED, ServerStatus.PROVISIONING,
                            ServerStatus.FAILED)

# A degraded server's agent answers: a deploy may be what repairs its sites.
DEPLOYABLE_SERVER_STATUSES = (ServerStatus.ACTIVE, ServerStatus.DEGRADED)


class DeploymentStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (DeploymentStatus.QUEUED, DeploymentStatus.RUNNING)


class SourceKind(StrEnum):
    ARCHIVE = "archive"
    GIT = "git"
    IMAGE = "image"
    ROLLBACK = "rollback"
    RELEASE = "release"


class AuditAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
