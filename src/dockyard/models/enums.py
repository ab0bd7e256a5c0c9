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
    UNREACHABLE = "unreachable"
    DECOMMISSIONED = "decommissioned"


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
