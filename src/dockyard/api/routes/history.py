from typing import Annotated

from fastapi import APIRouter, Query

from dockyard.api.deps import ID_PATTERN, ActorDep, PlatformDep
from dockyard.api.errors import COMMON_RESPONSES
from dockyard.core import history
from dockyard.models.schemas import AuditEventPublic

router = APIRouter(prefix="/history", tags=["history"], responses=COMMON_RESPONSES)


@router.get("", summary="Query the audit history, newest first")
async def query_history(
    platform: PlatformDep, actor: ActorDep,
    entity_type: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$")] = None,
    entity_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEventPublic]:
    return await history.query_history(
        platform, actor, entity_type=entity_type, entity_id=entity_id,
        before_id=before_id, limit=limit,
    )
