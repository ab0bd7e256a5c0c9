"""What a reader of a service's logs asks for and gets back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from dockyard.models.fields import IdPrefix, SingleLine, Whole

SINCE = r"[0-9]{1,6}[smhd]"
Since = Annotated[str, Whole(SINCE, "use a number and a unit: s, m, h or d (like '10m')")]
ProcessType = Annotated[str, Field(min_length=1, max_length=40), Whole(
    r"[a-z][a-z0-9_-]{0,39}", "use a process type like 'web' or 'worker'")]
MAX_TAIL = 10_000


class LogFilter(BaseModel):
    process_type: ProcessType | None = None
    release: IdPrefix | None = None
    since: Since | None = None
    tail: int = Field(default=100, ge=1, le=MAX_TAIL)
    search: SingleLine | None = None


class LogLinePublic(BaseModel):
    model_config = {"from_attributes": True}

    id: int
    time: datetime
    server: str = Field(validation_alias="server_name")
    process_type: str
    replica: int
    release: str
    stream: str
    line: str


