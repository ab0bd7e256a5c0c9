"""What the reconciler tells people: a server's drift (what differs from what it should run,
and since when) and the events of the corrections it made."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class Drift(BaseModel):
    """One difference the reconciler found and has not corrected (yet): `subject` is the
    container or site concerned, `since` when it was first seen."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    subject: str
    message: str
    since: datetime


class ServerEventPublic(BaseModel):
    """Something the reconciler did on a server (`kind`: removed, recreated, restored, or
    failed), in a sentence."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    time: datetime
    kind: str
    message: str
