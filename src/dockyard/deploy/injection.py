"""Injection, pure: the variable a stateful service of a project is injected as into the
project's apps, and an app's environment from its own variables plus those URLs.

The naming rule (PRODUCT.md, "Stateful services and environment injection"): a service named
after its kind's word gets the standard variable (`postgres` -> DATABASE_URL, `redis` ->
REDIS_URL); a suffix after a dash gives PREFIX_SUFFIX_URL (`redis-logs` -> REDIS_LOGS_URL,
`postgres-a-b` -> DATABASE_A_B_URL). Any other name is its own variable (a redis named `cache`
-> CACHE_URL), unless that would not be a variable an app may be given (`2cache`, `ld-cache`,
`dockyard`): then the kind's prefix goes in front (REDIS_2CACHE_URL). Dashes become
underscores; uppercase. Service names are DNS labels (models/fields.py Name), so `redis-` or
`Redis` never get here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from dockyard.agent.models import HOST_GATEWAY
from dockyard.models.deployment_plan import ReleaseLink
from dockyard.models.enums import ServiceKind
from dockyard.models.fields import ENV_KEY, MASK, RESERVED_ENV_KEYS, RESERVED_ENV_PREFIXES
from dockyard.models.stateful import StatefulLink

# kind -> (the word a name starts with, the variable's prefix)
_WORDS = {ServiceKind.POSTGRES: ("postgres", "DATABASE"), ServiceKind.REDIS: ("redis", "REDIS")}
YOU = "you"  # ReleaseLink.given_by when the user's own variable won


def variable_for(name: str, kind: ServiceKind) -> str:
    """The variable the stateful service `name` of `kind` is injected as."""
    word, prefix = _WORDS[kind]
    if name == word:
        return f"{prefix}_URL"
    if name.startswith(f"{word}-"):
        return f"{prefix}_{_upper(name[len(word) + 1:])}_URL"
    own = f"{_upper(name)}_URL"
    return own if _may_inject(own) else f"{prefix}_{own}"


def _upper(name: str) -> str:
    return name.replace("-", "_").upper()


def _may_inject(variable: str) -> bool:
    return (re.fullmatch(ENV_KEY, variable) is not None and variable not in RESERVED_ENV_KEYS
            and not variable.startswith(RESERVED_ENV_PREFIXES))


def clashing(others: Iterable[tuple[str, ServiceKind]], name: str, kind: ServiceKind
             ) -> str | None:
    """The name of another stateful service (name, kind) of the project that is injected as the
    same variable as `name` would be (`database` and `postgres` both give DATABASE_URL)."""
    wanted = variable_for(name, kind)
    return next((other for other, its_kind in others
                 if other != name and variable_for(other, its_kind) == wanted), None)


@dataclass(frozen=True)
class Injection:
    """An app's environment: its own variables plus the injected URLs, and what the release
    records of each link (who gave the variable when it was not injected)."""

    env: dict[str, str]
    links: list[ReleaseLink]

    @property
    def overridden(self) -> list[ReleaseLink]:
        return [link for link in self.links if not link.injected]


def injected_env(links: Iterable[StatefulLink], explicit: dict[str, str]) -> Injection:
    """`explicit` plus each link's URL under its variable. The user's own variable wins; of
    two services giving the same variable, the first by name wins."""
    env = dict(explicit)
    given: dict[str, str] = dict.fromkeys(explicit, YOU)
    recorded: list[ReleaseLink] = []
    for link in sorted(links, key=lambda x: x.service):
        winner = given.setdefault(link.variable, link.service)
        if winner == link.service:
            env[link.variable] = link.url
        recorded.append(release_link(link, None if winner == link.service else winner))
    return Injection(env, recorded)


def release_link(link: StatefulLink, given_by: str | None = None) -> ReleaseLink:
    """What a release keeps of a link: everything but the URL (its password)."""
    return ReleaseLink(service=link.service, kind=link.kind, variable=link.variable,
                       hostname=link.hostname, server_id=link.server_id,
                       server_ip=link.server_ip, given_by=given_by)


def overridden_message(link: ReleaseLink) -> str:
    """The deploy log's line for a link whose variable was not injected."""
    by = "set by you" if link.given_by == YOU else f"given by service {link.given_by}"
    return f"{link.variable} {by}, not injected from {link.service}"


def linked_message(links: list[ReleaseLink]) -> str:
    """The deploy log's line naming the stateful services a release is linked to."""
    named = ", ".join(f"{x.service} ({x.variable})" for x in links if x.injected)
    return f"linked stateful services: {named or 'none'}"


def masked_url(url: str) -> str:
    """`url` with its password replaced by ********."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def extra_hosts(links: Iterable[ReleaseLink], server_id: str) -> dict[str, str]:
    """What an app container on `server_id` resolves each linked service's name to: the
    node itself when the service runs there (the local Docker network), else its server."""
    return {link.hostname: HOST_GATEWAY if link.server_id == server_id else link.server_ip
            for link in links}
