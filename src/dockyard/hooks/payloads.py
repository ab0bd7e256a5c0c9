"""A forge's JSON payload read field by field, each missing or mistyped field a 400 that names
it; and a repository URL's comparable form."""

from __future__ import annotations

import json
import re
from typing import Any

from dockyard.kernel.errors import DockyardError

ZERO_SHA = re.compile(r"0{40}")
COMMIT = re.compile(r"[0-9a-f]{7,40}")


class BadDelivery(DockyardError):
    """The delivery is not what its provider sends: unreadable, or missing a header or field."""

    status_code = 400


class Doc:
    """A JSON object of the payload, at `path` (for messages)."""

    def __init__(self, value: Any, path: str = "payload") -> None:
        if not isinstance(value, dict):
            raise BadDelivery(f"{path} is not a JSON object")
        self.value: dict[str, Any] = value
        self.path = path

    @classmethod
    def parse(cls, body: bytes) -> Doc:
        try:
            return cls(json.loads(body))
        except (ValueError, RecursionError) as error:
            raise BadDelivery("the payload is not JSON; set the webhook's content type to "
                              "application/json") from error

    def _get(self, key: str, kind: type, optional: bool) -> Any:
        value = self.value.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BadDelivery(f"{self.path}.{key} is missing or not a {kind.__name__}")
        return value

    def text(self, key: str) -> str:
        return str(self._get(key, str, False))

    def maybe_text(self, key: str) -> str | None:
        value = self._get(key, str, True)
        return None if value is None else str(value)

    def number(self, key: str) -> int:
        return int(self._get(key, int, False))

    def flag(self, key: str) -> bool:
        return bool(self._get(key, bool, True))

    def obj(self, key: str) -> Doc:
        return Doc(self.value.get(key), f"{self.path}.{key}")

    def maybe_obj(self, key: str) -> Doc | None:
        return None if self.value.get(key) is None else self.obj(key)

    def objs(self, key: str) -> list[Doc]:
        items = self._get(key, list, False)
        return [Doc(item, f"{self.path}.{key}[{n}]") for n, item in enumerate(items)]

    def texts(self, *keys: str) -> tuple[str, ...]:
        """The string values among `keys` (URLs a repository is known by)."""
        return tuple(v for v in (self.value.get(k) for k in keys) if isinstance(v, str) and v)


def repo_key(url: str) -> str:
    """A repository URL's comparable form: host/path, lowercase, without scheme, user, port,
    trailing '/' or '.git'; every URL a forge gives for one repository has the same key."""
    text = url.strip().lower()
    if match := re.fullmatch(r"[a-z][a-z0-9+.-]*://(?:[^@/]*@)?([^/:]*)(?::\d*)?(/.*)?", text):
        host, path = match.group(1), match.group(2) or ""
    elif match := re.fullmatch(r"(?:[^@/]+@)?([^/:]+):(.*)", text):
        host, path = match.group(1), "/" + match.group(2).lstrip("/")
    else:
        host, path = "", text
    path = path.rstrip("/").removesuffix(".git").rstrip("/")
    return f"{host}{path}"
