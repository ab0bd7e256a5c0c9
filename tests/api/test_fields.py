"""The shared field types: whole-value patterns, free text without controls, reserved variable
names and unscoped addresses; each as a pure check and as the API answers it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from dockyard.agent import models as agent_models
from dockyard.kernel.context import bind_request_id
from dockyard.kernel.settings import Settings
from dockyard.models import fields
from dockyard.providers.cluster import ClusterSettings
from dockyard.providers.images import ImageSettings
from tests import sqlite_only

database_url = sqlite_only.database_url  # nothing here depends on the database kind

P = "/api/v1/projects"
SVC = f"{P}/shop/services/web"

# Every pattern-checked field type, with a value it accepts.
VALID = {
    "Name": "web", "EnvKeyName": "DATABASE_URL", "EnvKey": "DATABASE_URL",
    "ImageRef": "registry.example.com:5000/team/app:1.2", "GitRef": "v1.2",
    "HealthPath": "/healthz", "ObjectId": "a" * 32, "IdPrefix": "abcd",
    "SingleLine": "The Shop", "MultiLine": "the store\n\tsince 2024",
}


def adapter(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(getattr(fields, name))


@pytest.mark.parametrize("name", VALID)
def test_a_valid_value_is_accepted_as_it_is(name: str) -> None:
    assert adapter(name).validate_python(VALID[name]) == VALID[name]


SUFFIXES = ["\n", "\r\n", "\r", "\x00", "\x1b[31m"]


# A multi-line text may end with a newline: see test_only_multi_line_text_holds_newlines...
@pytest.mark.parametrize(("name", "suffix"), [
    (name, suffix) for name in VALID for suffix in SUFFIXES
    if (name, suffix) != ("MultiLine", "\n")])
def test_a_trailing_newline_or_control_is_refused_everywhere(name: str, suffix: str) -> None:
    with pytest.raises(ValidationError):
        adapter(name).validate_python(VALID[name] + suffix)


@pytest.mark.parametrize("text", [
    "a\x00b", "a\x1b[2Jb", "a\x07", "a\x7f", "a\x85b", "a\x9bb", "a\u2028b", "a\u2029b",
    "evil\u202egnp.exe", "a\u2066b\u2069", "a\u200fb", "a\rb",
])
@pytest.mark.parametrize("name", ["SingleLine", "MultiLine"])
def test_free_text_refuses_controls_separators_and_bidi_overrides(name: str, text: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        adapter(name).validate_python(text)


def test_only_multi_line_text_holds_newlines_and_tabs() -> None:
    for text in ("a\nb\tc", "ends with a newline\n"):
        assert adapter("MultiLine").validate_python(text) == text
    for text in ("a\nb", "a\tb"):
        with pytest.raises(ValidationError, match="one line"):
            adapter("SingleLine").validate_python(text)
    assert adapter("SingleLine").validate_python("Café 東京 👩‍💻") == "Café 東京 👩‍💻"


@pytest.mark.parametrize("key", ["PORT", "HOME", "HOSTNAME", "PATH", "DOCKYARD_RELEASE",
                                 "DOCKYARD_ANYTHING", "LD_PRELOAD", "LD_LIBRARY_PATH",
                                 "LD_AUDIT", "GCONV_PATH", "GLIBC_TUNABLES"])
def test_reserved_variable_names_are_refused_with_the_reserved_set(key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        adapter("EnvKey").validate_python(key)
    message = refused.value.errors()[0]["msg"]
    assert message.startswith(f"{key} is reserved")
    assert "PORT, HOME, HOSTNAME, PATH, GCONV_PATH, GLIBC_TUNABLES, DOCKYARD_*, LD_*" in message
    assert adapter("EnvKeyName").validate_python(key) == key


@pytest.mark.parametrize("key", ["PORTS", "MY_PORT", "PATHS", "XLD_PRELOAD", "DOCKYARD"])
def test_names_that_only_resemble_reserved_ones_are_fine(key: str) -> None:
    assert adapter("EnvKey").validate_python(key) == key


@pytest.mark.parametrize("address", ["::1%eth0", "fe80::1%1", "fe80::1%25eth0"])
def test_scoped_ipv6_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValidationError, match="without a zone id"):
        adapter("IpAddress").validate_python(address)


@pytest.mark.parametrize("address", ["10.0.0.5", "::1", "fe80::1", "2001:db8::5"])
def test_plain_addresses_are_accepted(address: str) -> None:
    assert str(adapter("IpAddress").validate_python(address)) == address


def test_the_openapi_pattern_is_anchored_for_ecma_262() -> None:
    schema = adapter("Name").json_schema()
    assert schema["pattern"] == f"^(?:{fields.DNS_LABEL})$"
    assert adapter("EnvKey").json_schema()["not"]["anyOf"][0]["enum"][0] == "PORT"


# Through the API.

def _messages(answer: Any) -> str:
    assert answer.status_code == 422, answer.text
    return str(answer.json()["detail"])


NAMES, KEYS, IMAGES = "lowercase letters", "uppercase letters", "image reference"


@pytest.mark.parametrize(("path", "body", "fragment"), [
    ("/api/v1/workspaces", {"name": "space\n"}, NAMES),
    (P, {"name": "shop\n"}, NAMES),
    (f"{P}/shop/services", {"name": "api\n"}, NAMES),
    (f"{P}/shop/services", {"name": "api", "image": "nginx:1.27\n"}, IMAGES),
    (f"{SVC}/env", {"set": [{"key": "DEBUG\n", "value": "1"}]}, KEYS),
    (f"{SVC}/env", {"unset": ["DEBUG\n"]}, KEYS),
    ("/api/v1/infra/deploy-configs", {"name": "careful\n"}, NAMES),
    ("/api/v1/infra/servers", {"name": "node\n", "ip": "10.0.0.5"}, NAMES),
])
async def test_a_trailing_newline_is_refused_by_the_api(client, shop, path, body, fragment):
    method = client.patch if path.endswith("/env") else client.post
    assert fragment in _messages(await method(path, json=body, headers=shop.headers))
    assert [p["name"] for p in (await client.get(P, headers=shop.headers)).json()] == ["shop"]
    assert (await client.get(f"{SVC}/env", headers=shop.headers)).json() == []


@pytest.mark.parametrize("path", [f"{P}/shop%0A", f"{P}/shop/services/web%0A",
                                  f"{SVC}/env/DEBUG%0A"])
async def test_a_trailing_newline_in_a_path_is_refused(client, shop, path):
    answer = await client.delete(path, headers=shop.headers)
    assert "letters" in _messages(answer)


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/workspaces", {"name": "space", "display_name": "Space\x1b[2J"}),
    ("/api/v1/workspaces", {"name": "space", "display_name": "two\nlines"}),
    (P, {"name": "store", "description": "a\x00b"}),
    (P, {"name": "store", "description": "invoice\u202efdp.exe"}),
    (P, {"name": "store", "description": "x\u2028y"}),
])
async def test_free_text_with_controls_is_refused_and_nothing_is_stored(client, shop, path, body):
    assert "control characters" in _messages(
        await client.post(path, json=body, headers=shop.headers))
    assert [p["name"] for p in (await client.get(P, headers=shop.headers)).json()] == ["shop"]
    spaces = (await client.get("/api/v1/workspaces", headers=shop.headers)).json()
    assert "space" not in [w["name"] for w in spaces]


async def test_a_multi_line_description_is_kept(client, shop):
    body = {"name": "store", "description": "the store\n\tsince 2024"}
    assert (await client.post(P, json=body, headers=shop.headers)).status_code == 201
    kept = await client.get(f"{P}/store", headers=shop.headers)
    assert kept.json()["description"] == "the store\n\tsince 2024"


async def test_a_display_name_longer_than_its_column_is_a_422_not_a_500(client, shop):
    body = {"name": "space", "display_name": "x" * 201}
    assert "at most 200" in _messages(
        await client.post("/api/v1/workspaces", json=body, headers=shop.headers))


@pytest.mark.parametrize("key", ["PORT", "DOCKYARD_RELEASE", "LD_PRELOAD", "PATH"])
async def test_reserved_variables_are_refused_by_every_way_of_setting_one(client, shop, key):
    h = shop.headers
    patched = await client.patch(f"{SVC}/env", json={"set": [{"key": key, "value": "x"}]},
                                 headers=h)
    assert f"{key} is reserved" in _messages(patched)
    put = await client.put(f"{SVC}/env/{key}", json={"value": "x"}, headers=h)
    assert f"{key} is reserved" in _messages(put)
    assert (await client.get(f"{SVC}/env", headers=h)).json() == []


async def test_a_reserved_variable_can_still_be_unset(client, shop):
    """A row stored before the name was reserved must stay removable."""
    answer = await client.patch(f"{SVC}/env", json={"unset": ["PORT"]}, headers=shop.headers)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("ip", ["::1%eth0", "fe80::1%2"])
async def test_a_server_with_a_scoped_address_is_refused(client, shop, ip):
    body = {"name": "node1", "ip": ip}
    answer = await client.post("/api/v1/infra/servers", json=body, headers=shop.headers)
    assert "without a zone id" in _messages(answer)
    assert (await client.get("/api/v1/infra/servers", headers=shop.headers)).json() == []


# The node agent's own types and the request id use the same whole-value matching.

AGENT_VALID = {"ServiceName": "web", "ContainerName": "shop-web_1.a", "Tag": "deploy_1a2b",
               "EnvKey": "PORT", "LabelKey": "dockyard.service", "SafePath": "/etc/certs/a.pem",
               "ProbePath": "/healthz?full=1", "Repository": "127.0.0.1:5000/shop/web"}


@pytest.mark.parametrize("name", AGENT_VALID)
def test_the_agents_types_match_the_whole_value(name: str) -> None:
    checked = TypeAdapter(getattr(agent_models, name))
    assert checked.validate_python(AGENT_VALID[name]) == AGENT_VALID[name]
    for suffix in SUFFIXES:
        with pytest.raises(ValidationError):
            checked.validate_python(AGENT_VALID[name] + suffix)


def test_a_request_id_with_a_trailing_newline_is_replaced() -> None:
    assert bind_request_id("abc-123") == "abc-123"
    fresh = bind_request_id("abc-123\n")
    assert fresh != "abc-123\n"
    assert len(fresh) == 32


@pytest.mark.parametrize(("settings_class", "field", "good"), [
    (Settings, "registry", "127.0.0.1:5000"), (Settings, "apps_domain", "apps.example.com"),
    (ClusterSettings, "prefix", "dy"), (ImageSettings, "suite", "bookworm"),
])
def test_operator_settings_match_the_whole_value(settings_class, field, good):
    assert getattr(settings_class.model_validate({field: good}), field) == good
    with pytest.raises(ValidationError, match="use "):
        settings_class.model_validate({field: good + "\n"})


async def test_headers_and_forms_are_matched_whole(client, owner) -> None:  # type: ignore[no-untyped-def]
    """The workspace header, the login form and a pin's fingerprint refuse a trailing newline."""
    workspace = {**owner.headers, "X-Dockyard-Workspace": owner.workspace_id + "\n"}
    assert (await client.get("/api/v1/projects", headers=workspace)).status_code == 422
    login = {"username": "owner@example.com\n", "password": "x"}
    assert (await client.post("/api/v1/auth/token", data=login)).status_code == 422
    pin = await client.post(f"/api/v1/infra/servers/{'a' * 32}/pin",
                            params={"fingerprint": ":".join(["AB"] * 32) + "\n"},
                            headers=owner.headers)
    assert pin.status_code == 422
