"""Validated field types for the API edge. Each error message says how to fix the value."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ENV_KEY = r"^[A-Z_][A-Z0-9_]*$"
IMAGE_REF = (
    r"^([a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?/)?"
    r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
NO_NUL = r"^[^\u0000]*$"
MASK = "********"


def _matches(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise PydanticCustomError("invalid_format", message)
        return value

    return AfterValidator(check)


Name = Annotated[
    str,
    Field(min_length=1, max_length=63, json_schema_extra={"pattern": DNS_LABEL}),
    _matches(DNS_LABEL, "use 1-63 lowercase letters, digits or dashes, "
             "starting and ending with a letter or digit (like 'my-app')"),
]
EnvKey = Annotated[
    str,
    Field(min_length=1, max_length=255, json_schema_extra={"pattern": ENV_KEY}),
    _matches(ENV_KEY, "use uppercase letters, digits and underscores, "
             "not starting with a digit (like 'DATABASE_URL')"),
]
EnvValue = Annotated[
    str,
    Field(max_length=32 * 1024, json_schema_extra={"pattern": NO_NUL}),
    _matches(NO_NUL, "a value cannot hold a NUL character"),
]
ImageRef = Annotated[
    str,
    Field(min_length=1, max_length=512, json_schema_extra={"pattern": IMAGE_REF}),
    _matches(IMAGE_REF, "not an image reference; use a form like "
             "'registry.example.com:5000/team/app:1.2' or 'nginx:1.27'"),
]
# Pydantic itself refuses strings that are not valid Unicode (unpaired surrogates).
Password = Annotated[str, Field(min_length=8, max_length=256)]
ShortText = Annotated[str, Field(max_length=500)]
