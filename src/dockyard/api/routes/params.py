"""Path parameter types shared by the routes: the API's field types, so a value in a path is
checked exactly like the same value in a body."""

from typing import Annotated

from fastapi import Path

from dockyard.models import fields

ProjectName = Annotated[fields.Name, Path(description="Project name.")]
ServiceName = Annotated[fields.Name, Path(description="Service name.")]
EnvKeyPath = Annotated[fields.EnvKey, Path(description="Variable name.")]
CredentialName = Annotated[fields.Name, Path(description="Credential name.")]
ObjectId = Annotated[fields.ObjectId, Path(description="Object id (32 hex digits).")]
Hostname = Annotated[fields.DomainName, Path(description="Domain name, like shop.example.com.")]
