"""Schemathesis over the app's own OpenAPI, against a real server: no 5xx, no schema violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dockyard.api.app import create_app
from dockyard.api.routes.deploys import ARCHIVE_TYPES
from dockyard.kernel.settings import Settings
from tests.live import ADMIN_PASSWORD, bring_up, start, stop

# The server's HTTP parser (h11) takes a request head of at most 16 KiB: past it, it answers 400
# and closes while the client may still be writing, which the client sees as a reset. Nginx in
# front answers such requests 414 before they reach the API.
MAX_HEAD_BYTES = 16 * 1024
DIGITALOCEAN_READS = ("/infra/sizes", "/infra/regions", "/infra/droplets")
FAST_HASHING = {"DOCKYARD_PASSWORD_TIME_COST": "1", "DOCKYARD_PASSWORD_MEMORY_KIB": "64"}
# Examples per operation. Valid input reaches the routes' own logic: 12, as before. Each
# exclusion in `_unexpressible` (positive_data_acceptance, a check of valid input) came from
# there. Invalid input is refused by the validation in front of the routes, which every
# operation shares, and an example costs 1.7 times as much to generate (mutated schemas,
# discarded mutations): 6, which halves the module's largest part (128 s of the CI run).
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    env, url = start(tmp_path_factory.mktemp("fuzz"))
    env.update(FAST_HASHING)
    bring_up(env)
    try:
        email = env["DOCKYARD_ADMIN_EMAIL"]
        yield {"url": url, "email": email, "headers": _seeded_headers(url, email)}
    finally:
        stop(env)


def _login(url: str, email: str) -> dict[str, str]:
    login = httpx.post(f"{url}/api/v1/auth/token",
                       data={"username": email, "password": ADMIN_PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _seeded_headers(url: str, email: str) -> dict[str, str]:
    """An owner's bearer header, with a project and a service for the fuzzer to find."""
    headers = _login(url, email)
    for path, body in (("/projects", {"name": "shop"}),
                       ("/projects/shop/services", {"name": "web"})):
        httpx.post(f"{url}/api/v1{path}", json=body, headers=headers).raise_for_status()
    return headers


@pytest.fixture(scope="module")
def api_schema(server: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_url(f"{server['url']}/openapi.json")


def _cases() -> list[Any]:
    """Every operation in positive mode; in negative mode those with inputs to get wrong."""
    spec = create_app(Settings()).openapi()
    cases = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            has_input = operation.get("parameters") or operation.get("requestBody")
            for mode in GenerationMode if has_input else [GenerationMode.POSITIVE]:
                label = f"{method.upper()} {path} {mode.value}"
                cases.append(pytest.param(method.upper(), path, mode, id=label))
    return cases


def _unexpressible(case: Any) -> list[Any]:
    """Schema-valid requests that are rightly refused (422), so that one check is left out:
    an archive upload needs project and service in its query, a JSON deploy in its body, and
    OpenAPI cannot say "required for this media type only"; an env patch may not set and
    unset the same key, and JSON Schema cannot say two arrays share no item; a domain's TLS
    by Cloudflare needs its DNS credential, and an ACME directory applies to ACME only (one
    field's value makes another required or forbidden). A webhook delivery needs its
    provider's headers and signature; a repository link takes a token or a deploy key, not
    both, no credential in an http URL, and only IPv6 literals in brackets (a git source of a
    deploy too). An autoscale policy's min may not pass its max, and it takes exactly one of
    its two targets. An app service whose image is a stateful kind's (redis, postgres) is
    sent to the stateful services' endpoint."""
    env_patch = case.method == "PATCH" and case.path.endswith("/env")
    autoscale = case.method == "PUT" and case.path.endswith("/autoscale")
    new_domain = case.method == "POST" and case.path.endswith("/domains")
    hooks = case.path.startswith("/api/v1/hooks/") or case.path.endswith("/repo-link")
    git_deploy = case.path == "/api/v1/infra/deploy"
    new_service = case.method == "POST" and case.path.endswith("/services")
    unexpressible = (case.media_type in ARCHIVE_TYPES or env_patch or new_domain or hooks
                     or autoscale or git_deploy or new_service)
    excluded = [positive_data_acceptance] if unexpressible else []
    # DigitalOcean is out of reach here (a closed local port): a call that reaches it with a
    # stored credential rightly answers 502, which says so (tests/api/provision uses the fake).
    if case.method == "GET" and case.path.removeprefix("/api/v1").startswith(DIGITALOCEAN_READS):
        excluded.append(not_a_server_error)
    return excluded


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_api_never_errors_and_keeps_its_schema(
    api_schema: Any, server: dict[str, Any], method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    # Logging out ends the session it is called with: give it its own, not the shared one.
    ends_session = path.endswith("/auth/logout")
    headers = _login(server["url"], server["email"]) if ends_session else server["headers"]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES[mode], deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def check(case: Any) -> None:
        assume(head_size(case) < MAX_HEAD_BYTES)
        case.call_and_validate(headers=headers, excluded_checks=_unexpressible(case))

    check()


def head_size(case: Any) -> int:
    """About how many bytes the request line and headers of `case` take."""
    query = urlencode(case.query or {}, doseq=True)
    headers = sum(len(str(k)) + len(str(v)) + 4 for k, v in (case.headers or {}).items())
    return len(case.formatted_path) + len(query) + headers
