"""Path and query parameter types shared by the routes."""

from typing import Annotated

from fastapi import Path

from dockyard.api.deps import ID_PATTERN
from dockyard.models.fields import DNS_LABEL, ENV_KEY

ProjectName = Annotated[str, Path(max_length=63, pattern=DNS_LABEL, description="Project name.")]
ServiceName = Annotated[str, Path(max_length=63, pattern=DNS_LABEL, description="Service name.")]
EnvKeyPath = Annotated[str, Path(max_length=255, pattern=ENV_KEY, description="Variable name.")]
CredentialName = Annotated[
    str, Path(max_length=63, pattern=DNS_LABEL, description="Credential name.")
]
ObjectId = Annotated[str, Path(pattern=ID_PATTERN, description="Object id (32 hex digits).")]
