"""Hostile values are refused at the edge, before anything is built from them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dockyard.agent.models import ContainerSpec, ImageRef, Site, Upstream

GOOD_SITE: dict[str, Any] = {"service": "web", "server_names": ["shop.example.com"],
                             "upstreams": [{"host": "127.0.0.1", "port": 8000}]}


@pytest.mark.parametrize("name", [
    "a;b.example", "a{b", "a}b", "shop.example.com; include /etc/passwd", "a b", "a\nb",
    "a\rb", "shop.example.com\n", "", "-a.example", "a..b", "x" * 64 + ".example",
    "ünïcode.example", "a/b", "*.shop.example.com", "*",
])
def test_hostile_server_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        Site.model_validate({**GOOD_SITE, "server_names": [name]})


@pytest.mark.parametrize("name", ["shop.example.com", "localhost", "a-b.c"])
def test_ordinary_server_names_pass(name: str) -> None:
    assert Site.model_validate({**GOOD_SITE, "server_names": [name]}).server_names == [name]


@pytest.mark.parametrize("host", ["1.2.3.4;", "a b", "a{", "127.0.0.1\n", "[::1]"])
def test_hostile_upstreams_are_refused(host: str) -> None:
    with pytest.raises(ValidationError):
        Upstream(host=host, port=80)


def test_a_desired_state_of_an_earlier_agent_still_loads() -> None:
    """Its sites carry `"tls": null`; nothing else with that key is accepted."""
    assert Site.model_validate({**GOOD_SITE, "tls": None}) == Site.model_validate(GOOD_SITE)
    with pytest.raises(ValidationError):
        Site.model_validate({**GOOD_SITE, "tls": {"certificate": "/c.pem", "key": "/k.pem"}})


@pytest.mark.parametrize("service", ["Web", "web;", "web service", "-web", "../web", ""])
def test_hostile_service_names_are_refused(service: str) -> None:
    with pytest.raises(ValidationError):
        Site.model_validate({**GOOD_SITE, "service": service})


@pytest.mark.parametrize(("repository", "tag"), [
    ("Shop", "latest"), ("shop;rm", "latest"), ("shop", "a b"), ("shop", "-x"),
    ("shop", "deploy:1"), ("--help", "latest"),
])
def test_hostile_image_references_are_refused(repository: str, tag: str) -> None:
    with pytest.raises(ValidationError):
        ImageRef(repository=repository, tag=tag)


def test_registry_image_references_pass() -> None:
    ref = ImageRef(repository="10.231.0.1:5000/shop/web", tag="deploy_0123abcd")
    assert ref.reference == "10.231.0.1:5000/shop/web:deploy_0123abcd"


@pytest.mark.parametrize("changes", [
    {"env": {"BAD-KEY": "x"}}, {"env": {"K": "nul\x00"}}, {"name": "a b"},
    {"memory_bytes": 1}, {"cpus": 0}, {"restart": "sometimes"},
    {"ports": [{"container_port": 0, "host_port": 80}]},
    {"volumes": [{"volume": "data", "target": "relative"}]}, {"privileged": True},
])
def test_hostile_container_specs_are_refused(changes: dict[str, Any]) -> None:
    base = {"name": "web-1", "service": "web", "image": {"repository": "shop/web"}}
    with pytest.raises(ValidationError):
        ContainerSpec.model_validate({**base, **changes})
