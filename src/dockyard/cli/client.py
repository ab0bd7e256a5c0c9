"""A thin, typed HTTP client of the Dockyard API for the CLI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from dockyard.cli.config import CliConfig

DEFAULT_URL = "http://127.0.0.1:8420"


class CliError(Exception):
    """A failure to report as one line, with a non-zero exit code."""


class ApiError(CliError):
    """The API answered with an error status."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(_field_error(e) for e in detail)
    return str(detail)


def _field_error(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", [])[1:])
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


class ApiClient:
    def __init__(self, url: str, token: str | None = None, workspace: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if workspace:
            headers["X-Dockyard-Workspace"] = workspace
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    @classmethod
    def from_config(cls, config: CliConfig | None = None) -> ApiClient:
        config = config or CliConfig.load()
        if not config.token:
            raise CliError("not logged in: run `dockyard login` (or set DOCKYARD_TOKEN)")
        return cls(config.url or DEFAULT_URL, config.token, config.workspace)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, f"/api/v1{path}", **kwargs)
        except httpx.ReadTimeout as exc:
            raise CliError(
                f"the Dockyard API at {self.url} took the request but did not answer in time; "
                "it may still be carrying it out: look before you try again"
            ) from exc
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the Dockyard API at {self.url} ({exc.__class__.__name__}); "
                "is it running? Start it with `dockyard up`"
            ) from exc
        if response.status_code >= 400:
            message = f"{_detail(response)} (HTTP {response.status_code})"
            raise ApiError(message, response.status_code)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def login(self, email: str, password: str) -> str:
        """A JWT for email and password."""
        answer = self.request("POST", "/auth/token", data={"username": email, "password": password})
        return str(answer["access_token"])


def seg(value: str) -> str:
    """One path segment, escaped so a name can never change the path it is placed in."""
    return quote(value, safe="")
