"""Properties of the shared field types, on arbitrary and near-valid Unicode: a value is either
accepted unchanged or refused with a ValidationError (never another exception); what the type
accepts, the real API accepts too and stores so that it reads back by path and deletes."""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from dockyard.models import fields

T = TypeVar("T")
EXAMPLES = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
SAMPLES = {
    "Name": "web", "EnvKeyName": "DATABASE_URL", "EnvKey": "DATABASE_URL", "EnvValue": "x=1",
    "ImageRef": "registry.example.com:5000/team/app:1.2", "GitRef": "v1.2",
    "GitUrl": "https://git.example.com/shop.git", "HealthPath": "/healthz",
    "ObjectId": "a" * 32, "IdPrefix": "abcd", "Argument": "--workers=4",
    "SingleLine": "The Shop", "MultiLine": "the store", "ProviderToken": "dop_v1_abc",
    "IpAddress": "fe80::1",
}
# Characters that break a line, a terminal or a path, plus a few that are harmless.
TRICKY = ["\n", "\r", "\r\n", "\t", "\x00", "\x1b", "\x1b[2J", "\x7f", "\x85", "\x9b",
          "\u2028", "\u2029", "\u202e", "\u2066", "\u200f", "\ufeff", " ", "/", "%", "-",
          "%eth0", "é", "👩‍💻"]
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)  # no surrogates
CONTROLS = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=5)


def near_valid(sample: str) -> st.SearchStrategy[str]:
    """The sample with tricky characters put before, inside or after it."""
    tricky = st.sampled_from(TRICKY) | CONTROLS
    return st.one_of(
        st.builds(lambda t: sample + t, tricky), st.builds(lambda t: t + sample, tricky),
        st.builds(lambda at, t: sample[:at] + t + sample[at:],
                  st.integers(0, len(sample)), tricky))


def values(name: str) -> st.SearchStrategy[str]:
    return st.one_of(near_valid(SAMPLES[name]), ANY_TEXT, CONTROLS)


def accepted(name: str, value: str) -> bool:
    try:
        result = TypeAdapter(getattr(fields, name)).validate_python(value)
    except ValidationError:
        return False
    assert str(result) == value or name == "IpAddress", "accepted values are kept as sent"
    return True


def _controls(value: str) -> set[str]:
    return {c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")}


@pytest.mark.parametrize("name", SAMPLES)
def test_every_field_type_accepts_or_refuses_cleanly(name: str) -> None:
    @EXAMPLES
    @given(value=values(name))
    def check(value: str) -> None:
        if accepted(name, value) and name not in ("EnvValue", "Argument"):
            allowed = {"\n", "\t"} if name == "MultiLine" else set()
            assert _controls(value) <= allowed, f"{name} accepted {value!r}"
            assert "\u202e" not in value

    check()


# Through the real API: the property runs in a worker thread and drives the app on the loop.

def _on(loop: asyncio.AbstractEventLoop, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)


async def _run(check: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    await asyncio.to_thread(check, asyncio.get_running_loop())


P = "/api/v1/projects"
SVC = f"{P}/shop/services/web"


def _round_trip(loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient,
                headers: dict[str, str], create: tuple[str, str, dict[str, Any]],
                read: str, delete: str, ok: int) -> httpx.Response | None:
    """Create; when it is accepted, read it back by path and delete it. None: refused."""
    method, path, body = create
    made = _on(loop, lambda: client.request(method, path, json=body, headers=headers))
    assert made.status_code in (ok, 422), made.text
    if made.status_code == 422:
        return None
    found = _on(loop, lambda: client.get(read, headers=headers))
    assert found.status_code == 200, found.text
    gone = _on(loop, lambda: client.delete(delete, headers=headers))
    assert gone.status_code == 204, gone.text
    return found


async def test_accepted_project_and_service_names_round_trip(client, shop):
    def check(loop: asyncio.AbstractEventLoop) -> None:
        @EXAMPLES
        @given(value=values("Name").filter(lambda v: v not in ("shop", "web")))
        def names(value: str) -> None:
            segment = quote(value, safe="")
            for base in (P, f"{P}/shop/services"):
                found = _round_trip(loop, client, shop.headers, ("POST", base, {"name": value}),
                                    f"{base}/{segment}", f"{base}/{segment}", 201)
                assert (found is not None) == accepted("Name", value)
                assert found is None or found.json()["name"] == value

        names()

    await _run(check)


async def test_accepted_descriptions_round_trip(client, shop):
    def check(loop: asyncio.AbstractEventLoop) -> None:
        @EXAMPLES
        @given(value=values("MultiLine"))
        def descriptions(value: str) -> None:
            found = _round_trip(loop, client, shop.headers,
                                ("POST", P, {"name": "described", "description": value}),
                                f"{P}/described", f"{P}/described", 201)
            assert (found is not None) == accepted("MultiLine", value)
            assert found is None or found.json()["description"] == value

        descriptions()

    await _run(check)


async def test_accepted_env_keys_and_values_round_trip(client, shop):
    def listed(loop: asyncio.AbstractEventLoop) -> dict[str, str]:
        answer = _on(loop, lambda: client.get(f"{SVC}/env", headers=shop.headers))
        return {v["key"]: v["value"] for v in answer.json()}

    def check(loop: asyncio.AbstractEventLoop) -> None:
        @EXAMPLES
        @given(key=values("EnvKey"), value=values("EnvValue"))
        def variables(key: str, value: str) -> None:
            body = {"set": [{"key": key, "value": value}]}
            found = _round_trip(loop, client, shop.headers, ("PATCH", f"{SVC}/env", body),
                                f"{SVC}/env", f"{SVC}/env/{quote(key, safe='')}", 200)
            assert (found is not None) == (accepted("EnvKey", key)
                                           and accepted("EnvValue", value))
            if found is not None:
                assert {v["key"]: v["value"] for v in found.json()} == {key: value}
            assert listed(loop) == {}

        variables()

    await _run(check)


async def test_accepted_workspace_names_and_display_names_round_trip(client, shop):
    def check(loop: asyncio.AbstractEventLoop) -> None:
        @EXAMPLES
        @given(name=values("Name"), display=values("SingleLine"))
        def workspaces(name: str, display: str) -> None:
            body = {"name": name, "display_name": display}
            made = _on(loop, lambda: client.post("/api/v1/workspaces", json=body,
                                                 headers=shop.headers))
            assert made.status_code in (201, 409, 422), made.text
            expected = accepted("Name", name) and accepted("SingleLine", display)
            assert (made.status_code != 422) == expected
            if made.status_code == 201:
                path = f"/api/v1/workspaces/{made.json()['id']}"
                inside = {**shop.headers, "X-Dockyard-Workspace": made.json()["id"]}
                found = _on(loop, lambda: client.get(path, headers=inside))
                assert found.status_code == 200, found.text
                assert (found.json()["name"], found.json()["display_name"]) == (name, display)
                gone = _on(loop, lambda: client.delete(path, headers=inside))
                assert gone.status_code == 204, gone.text

        workspaces()

    await _run(check)
