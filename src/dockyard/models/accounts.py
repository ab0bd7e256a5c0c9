"""API schemas of accounts: login sessions, passwords, invitations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from dockyard.models.enums import Role
from dockyard.models.fields import AnyPassword, Email, Password, Whole
from dockyard.models.schemas import Input, Output

InvitationToken = Annotated[
    str, Field(min_length=10, max_length=100, description="The invitation's secret (`dyi_...`)."),
    Whole(r"dyi_[A-Za-z0-9_-]+", "an invitation token starts with 'dyi_'; paste it whole, or "
          "the part of the invitation link after '#'"),
]


class SessionPublic(Output):
    id: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime | None
    user_agent: str
    current: bool = Field(description="Whether this is the session making the request.")


class PasswordChange(Input):
    old_password: AnyPassword
    new_password: Password


class PasswordChanged(Output):
    sessions_ended: int = Field(description="Other login sessions of yours that were ended.")
    tokens_ended: int = Field(description="API tokens of yours that were revoked.")


class AccountDelete(Input):
    email: Email
    password: AnyPassword


class InvitationCreate(Input):
    email: Email
    role: Role = Role.MEMBER


class InvitationPublic(Output):
    id: str
    email: str
    role: Role
    prefix: str
    created_at: datetime
    expires_at: datetime


class InvitationCreated(InvitationPublic):
    token: str = Field(description="Shown once: give it (or the link) to the invited person.")
    link: str


class InvitationAccept(Input):
    token: InvitationToken
    password: AnyPassword | None = Field(
        default=None,
        description="Without a login: the new account's password (chosen by you, at least 8 "
        "characters), or the password of your existing account with the invited address.",
    )


class InvitationAccepted(Output):
    user_id: str
    email: str
    workspace_id: str
    workspace_name: str
    role: Role
    account_created: bool
