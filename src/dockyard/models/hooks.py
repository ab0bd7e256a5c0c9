"""What a forge's webhook delivery says, once its provider's format is read: typed events the
webhook and preview services act on, and the outcome each delivery records."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Provider(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"  # Gitea and Forgejo
    BITBUCKET = "bitbucket"


@dataclass(frozen=True)
class PushEvent:
    """A branch moved. `repo_urls`: every URL the payload names for the repository (clone,
    web, ssh); `commit`: the new head (Bitbucket sends a prefix of at least 12 digits)."""

    repo_urls: tuple[str, ...]
    branch: str  # "" when a tag was pushed
    commit: str
    deleted: bool = False
    also: tuple[PushEvent, ...] = ()  # the other refs the same push moved (Bitbucket)

    def of_branch(self, branch: str) -> PushEvent:
        """The change to `branch` among this push's, else this one."""
        return next((x for x in (self, *self.also) if x.branch == branch), self)


@dataclass(frozen=True)
class PullRequestEvent:
    """A pull (merge) request opened, updated (new head, reopened) or closed (merged or not).
    `from_fork`: its head lives in another repository."""

    repo_urls: tuple[str, ...]
    number: int
    action: Literal["opened", "updated", "closed"]
    head_commit: str
    head_branch: str
    base_branch: str
    from_fork: bool = False


@dataclass(frozen=True)
class OtherEvent:
    """An event Dockyard does not act on (a ping, an issue comment, ...), named as sent."""

    name: str
    repo_urls: tuple[str, ...] = ()


Event = PushEvent | PullRequestEvent | OtherEvent


@dataclass(frozen=True)
class Delivery:
    provider: Provider
    delivery_id: str
    event: Event


Outcome = Literal["deployed", "ignored", "refused", "removed", "failed", "queued",
                  "superseded"]
"""`queued`: waits for the running deployment of its service to end (then acted on, or
`superseded` by a newer delivery for the same service, named in its detail)."""


@dataclass(frozen=True)
class HookOutcome:
    """What one delivery did, as its row records it: `detail` is a sentence for a person."""

    outcome: Outcome
    detail: str
    deployment_id: str | None = None


@dataclass(frozen=True)
class LinkInfo:
    """A repository link as the services acting on a delivery see it (no secrets)."""

    id: str
    workspace_id: str
    service_id: str
    user_id: str
    project: str
    service: str
    repo_url: str
    branch: str
    previews: bool
    preview_dns_credential: str
