"""The injection naming rule and an app's environment from its variables plus its project's
stateful services, exactly (pure: deploy/injection.py)."""

from __future__ import annotations

import pytest

from dockyard.deploy import injection
from dockyard.deploy.injection import injected_env, variable_for
from dockyard.models.deployment_plan import ReleaseLink
from dockyard.models.enums import ServiceKind
from dockyard.models.stateful import StatefulLink

PG, REDIS = ServiceKind.POSTGRES, ServiceKind.REDIS


@pytest.mark.parametrize(("name", "kind", "variable"), [
    ("redis", REDIS, "REDIS_URL"),
    ("redis-logs", REDIS, "REDIS_LOGS_URL"),
    ("redis-business", REDIS, "REDIS_BUSINESS_URL"),
    ("postgres", PG, "DATABASE_URL"),
    ("postgres-analytics", PG, "DATABASE_ANALYTICS_URL"),
    ("postgres-a-b", PG, "DATABASE_A_B_URL"),
    ("redis-2", REDIS, "REDIS_2_URL"),
    ("redis-a--b", REDIS, "REDIS_A__B_URL"),
    # a name that does not start with its kind's word is its own variable
    ("cache", REDIS, "CACHE_URL"),
    ("redis-cache", PG, "REDIS_CACHE_URL"),
    ("postgres", REDIS, "POSTGRES_URL"),
    ("redisx", REDIS, "REDISX_URL"),
    ("postgresql", PG, "POSTGRESQL_URL"),
    ("my-db", PG, "MY_DB_URL"),
    # ... unless that is no variable an app may be given: the kind's prefix goes first
    ("2cache", REDIS, "REDIS_2CACHE_URL"),
    ("0", PG, "DATABASE_0_URL"),
    ("dockyard", REDIS, "REDIS_DOCKYARD_URL"),
    ("dockyard-db", PG, "DATABASE_DOCKYARD_DB_URL"),
    ("ld-cache", REDIS, "REDIS_LD_CACHE_URL"),
])
def test_the_variable_of_each_name_is_exactly(name: str, kind: ServiceKind,
                                              variable: str) -> None:
    assert variable_for(name, kind) == variable


def test_two_services_giving_one_variable_are_found() -> None:
    others = [("postgres", PG), ("redis-logs", REDIS)]
    assert injection.clashing(others, "database", PG) == "postgres"
    assert injection.clashing(others, "database", REDIS) == "postgres"
    assert injection.clashing(others, "redis-logs", REDIS) is None  # itself
    assert injection.clashing(others, "logs", REDIS) is None


def link(service: str, kind: ServiceKind = REDIS, server: str = "s1") -> StatefulLink:
    return StatefulLink(service=service, kind=kind, variable=variable_for(service, kind),
                        url=f"redis://:pw-{service}@{service}.shop.dockyard.internal:20001/0",
                        hostname=f"{service}.shop.dockyard.internal", server_id=server,
                        server_ip=f"10.0.0.{server[-1]}")


def recorded(service: str, given_by: str | None = None, server: str = "s1") -> ReleaseLink:
    return injection.release_link(link(service, server=server), given_by)


def test_the_env_is_the_apps_variables_plus_each_link() -> None:
    result = injected_env([link("redis-logs"), link("redis")], {"DEBUG": "1"})
    assert result.env == {
        "DEBUG": "1",
        "REDIS_URL": "redis://:pw-redis@redis.shop.dockyard.internal:20001/0",
        "REDIS_LOGS_URL": "redis://:pw-redis-logs@redis-logs.shop.dockyard.internal:20001/0"}
    assert result.links == [recorded("redis"), recorded("redis-logs")]
    assert result.overridden == []
    assert "url" not in result.links[0].model_dump()  # the password stays in the env


def test_the_users_own_variable_wins_and_is_named() -> None:
    result = injected_env([link("redis")], {"REDIS_URL": "redis://elsewhere:6379"})
    assert result.env == {"REDIS_URL": "redis://elsewhere:6379"}
    assert result.overridden == [recorded("redis", "you")]
    assert [injection.overridden_message(x) for x in result.overridden] == [
        "REDIS_URL set by you, not injected from redis"]
    assert injection.linked_message(result.links) == "linked stateful services: none"


def test_of_two_services_giving_one_variable_the_first_by_name_wins() -> None:
    clash = StatefulLink(service="cache", kind=REDIS, variable="REDIS_URL", url="redis://x",
                         hostname="cache.shop.dockyard.internal", server_id="s1",
                         server_ip="10.0.0.1")
    result = injected_env([link("redis"), clash], {})
    assert result.env == {"REDIS_URL": "redis://x"}
    assert [injection.overridden_message(x) for x in result.overridden] == [
        "REDIS_URL given by service cache, not injected from redis"]
    assert injection.linked_message(result.links) == (
        "linked stateful services: cache (REDIS_URL)")


def test_no_links_leave_the_variables_as_they_are() -> None:
    assert injected_env([], {"A": "1"}) == injection.Injection({"A": "1"}, [])


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://shop_db:s3cr%40t@db.shop.dockyard.internal:20001/shop_db",
     "postgresql://shop_db:********@db.shop.dockyard.internal:20001/shop_db"),
    ("redis://:pw@redis.shop.dockyard.internal:20002/0",
     "redis://:********@redis.shop.dockyard.internal:20002/0"),
    ("redis://redis.shop.dockyard.internal:20002/0",
     "redis://redis.shop.dockyard.internal:20002/0"),
])
def test_a_url_is_shown_without_its_password(url: str, masked: str) -> None:
    assert injection.masked_url(url) == masked


def test_each_server_reaches_a_service_on_itself_through_the_node_and_others_by_ip() -> None:
    links = [recorded("redis", server="s1"), recorded("redis-logs", server="s2")]
    assert injection.extra_hosts(links, "s1") == {
        "redis.shop.dockyard.internal": "host-gateway",
        "redis-logs.shop.dockyard.internal": "10.0.0.2"}
    assert injection.extra_hosts(links, "s3") == {
        "redis.shop.dockyard.internal": "10.0.0.1",
        "redis-logs.shop.dockyard.internal": "10.0.0.2"}
