"""Each forge's webhook format: its headers and payload read into a typed `Delivery`, and its
signature checked against a link's secret. Pure: no I/O."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import replace

from dockyard.hooks.payloads import COMMIT, ZERO_SHA, BadDelivery, Doc
from dockyard.models.hooks import (
    Delivery,
    Event,
    OtherEvent,
    Provider,
    PullRequestEvent,
    PushEvent,
)

Headers = Mapping[str, str]


def _lower(headers: Headers) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def _header(headers: dict[str, str], *names: str) -> str:
    value = next((headers[name] for name in names if headers.get(name)), "")
    if not value or len(value) > 200:
        raise BadDelivery(f"the {names[0]} header is missing; is this a "
                          "delivery from the provider in the webhook URL?")
    return value


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def verify(provider: Provider, headers: Headers, body: bytes, secret: str) -> bool:
    """Whether the delivery carries `secret`'s signature (GitLab: the secret token itself)."""
    found = _lower(headers)
    if provider is Provider.GITLAB:
        return _equal(found.get("x-gitlab-token", ""), secret)
    if provider is Provider.GITEA:
        given = found.get("x-gitea-signature") or found.get("x-forgejo-signature", "")
        return _equal(given, _hmac_hex(secret, body))
    name = "x-hub-signature-256" if provider is Provider.GITHUB else "x-hub-signature"
    return _equal(found.get(name, ""), "sha256=" + _hmac_hex(secret, body))


def read(provider: Provider, headers: Headers, body: bytes) -> Delivery:
    """The delivery's id and event; BadDelivery (400) for anything its provider never sends."""
    found = _lower(headers)
    delivery_id, event_name = _IDS[provider](found)
    event = _READERS[provider](event_name, Doc.parse(body))
    return Delivery(provider=provider, delivery_id=delivery_id, event=event)


def _branch(ref: str) -> str:
    """The branch a full ref names; "" for a tag or anything else."""
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ""


def _sha(value: str) -> str:
    if not COMMIT.fullmatch(value):
        raise BadDelivery(f"{value[:100]!r} is not a commit sha (7 to 40 hex digits)")
    return value


def _push(urls: tuple[str, ...], ref: str, after: str, deleted: bool = False) -> PushEvent:
    gone = deleted or bool(ZERO_SHA.fullmatch(after))
    return PushEvent(repo_urls=urls, branch=_branch(ref) or _tagless(ref),
                     commit="" if gone else _sha(after), deleted=gone)


def _tagless(ref: str) -> str:
    if ref.startswith("refs/tags/"):
        return ""
    raise BadDelivery(f"payload.ref {ref[:100]!r} is neither a branch nor a tag")


def _pull(urls: tuple[str, ...], number: int, action: str | None, head: tuple[str, str],
          base: str, fork: bool) -> Event:
    if action is None:
        return OtherEvent(name="pull_request", repo_urls=urls)
    return PullRequestEvent(repo_urls=urls, number=number, action=action,  # type: ignore[arg-type]
                            head_commit=_sha(head[0]), head_branch=head[1], base_branch=base,
                            from_fork=fork)


# GitHub

_GITHUB_URLS = ("clone_url", "html_url", "ssh_url", "git_url", "svn_url", "url")
_GITHUB_ACTIONS = {"opened": "opened", "reopened": "updated", "synchronize": "updated",
                   "closed": "closed"}


def _github(event: str, doc: Doc) -> Event:
    repo = doc.maybe_obj("repository")
    urls = repo.texts(*_GITHUB_URLS) if repo else ()
    if event == "push":
        return _push(urls, doc.text("ref"), doc.text("after"), doc.flag("deleted"))
    if event != "pull_request":
        return OtherEvent(name=event, repo_urls=urls)
    pr = doc.obj("pull_request")
    head, base = pr.obj("head"), pr.obj("base")
    head_repo, base_repo = head.maybe_obj("repo"), base.obj("repo")
    fork = head_repo is None or head_repo.text("full_name") != base_repo.text("full_name")
    return _pull(urls, doc.number("number"), _GITHUB_ACTIONS.get(doc.text("action")),
                 (head.text("sha"), head.text("ref")), base.text("ref"), fork)


# GitLab

_GITLAB_URLS = ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url", "url",
                "homepage")
_GITLAB_ACTIONS = {"open": "opened", "reopen": "updated", "update": "updated",
                   "close": "closed", "merge": "closed"}


def _gitlab_urls(doc: Doc) -> tuple[str, ...]:
    found = [part.texts(*_GITLAB_URLS) for part in (doc.maybe_obj("project"),
                                                    doc.maybe_obj("repository")) if part]
    return tuple(dict.fromkeys(url for urls in found for url in urls))


def _gitlab(event: str, doc: Doc) -> Event:
    urls = _gitlab_urls(doc)
    if event in ("Push Hook", "Tag Push Hook"):
        return _push(urls, doc.text("ref"), doc.text("after"))
    if event != "Merge Request Hook":
        return OtherEvent(name=event, repo_urls=urls)
    mr = doc.obj("object_attributes")
    fork = mr.number("source_project_id") != mr.number("target_project_id")
    return _pull(urls, mr.number("iid"), _GITLAB_ACTIONS.get(mr.maybe_text("action") or ""),
                 (mr.obj("last_commit").text("id"), mr.text("source_branch")),
                 mr.text("target_branch"), fork)


# Gitea and Forgejo

_GITEA_ACTIONS = {"opened": "opened", "reopened": "updated", "synchronized": "updated",
                  "closed": "closed"}


def _gitea(event: str, doc: Doc) -> Event:
    repo = doc.maybe_obj("repository")
    urls = repo.texts("clone_url", "html_url", "ssh_url", "original_url") if repo else ()
    if event == "push":
        return _push(urls, doc.text("ref"), doc.text("after"))
    if event not in ("pull_request", "pull_request_sync"):
        return OtherEvent(name=event, repo_urls=urls)
    pr = doc.obj("pull_request")
    head, base = pr.obj("head"), pr.obj("base")
    fork = head.obj("repo").number("id") != base.obj("repo").number("id")
    return _pull(urls, doc.number("number"), _GITEA_ACTIONS.get(doc.text("action")),
                 (head.text("sha"), head.text("ref")), base.text("ref"), fork)


# Bitbucket Cloud

_BITBUCKET_ACTIONS = {"pullrequest:created": "opened", "pullrequest:updated": "updated",
                      "pullrequest:fulfilled": "closed", "pullrequest:rejected": "closed"}


def _bitbucket_urls(repo: Doc | None) -> tuple[str, ...]:
    links = repo.maybe_obj("links") if repo else None
    html = links.maybe_obj("html") if links else None
    return html.texts("href") if html else ()


def _bitbucket(event: str, doc: Doc) -> Event:
    urls = _bitbucket_urls(doc.maybe_obj("repository"))
    if event == "repo:push":
        return _bitbucket_push(urls, doc.obj("push").objs("changes"))
    if event not in _BITBUCKET_ACTIONS:
        return OtherEvent(name=event, repo_urls=urls)
    pr = doc.obj("pullrequest")
    source, target = pr.obj("source"), pr.obj("destination")
    fork = (source.obj("repository").text("full_name")
            != target.obj("repository").text("full_name"))
    return _pull(urls, pr.number("id"), _BITBUCKET_ACTIONS[event],
                 (source.obj("commit").text("hash"), source.obj("branch").text("name")),
                 target.obj("branch").text("name"), fork)


def _bitbucket_push(urls: tuple[str, ...], changes: list[Doc]) -> PushEvent:
    """The push's first change, with the others in `also` (a push of several refs names each;
    a link acts on the change to its branch)."""
    if not changes:
        raise BadDelivery("payload.push.changes is empty")
    first, *others = (_bitbucket_change(urls, change) for change in changes)
    return replace(first, also=tuple(others))


def _bitbucket_change(urls: tuple[str, ...], change: Doc) -> PushEvent:
    new, old = change.maybe_obj("new"), change.maybe_obj("old")
    if new is None:
        gone = old.text("name") if old and old.text("type") == "branch" else ""
        return PushEvent(repo_urls=urls, branch=gone, commit="", deleted=True)
    branch = new.text("name") if new.text("type") == "branch" else ""
    return PushEvent(repo_urls=urls, branch=branch, commit=_sha(new.obj("target").text("hash")))


_IDS: dict[Provider, Callable[[dict[str, str]], tuple[str, str]]] = {
    Provider.GITHUB: lambda h: (_header(h, "x-github-delivery"), _header(h, "x-github-event")),
    Provider.GITLAB: lambda h: (_header(h, "idempotency-key", "x-gitlab-event-uuid"),
                                _header(h, "x-gitlab-event")),
    Provider.GITEA: lambda h: (_header(h, "x-gitea-delivery", "x-forgejo-delivery"),
                               _header(h, "x-gitea-event", "x-forgejo-event")),
    Provider.BITBUCKET: lambda h: (_header(h, "x-request-uuid"), _header(h, "x-event-key")),
}
_READERS: dict[Provider, Callable[[str, Doc], Event]] = {
    Provider.GITHUB: _github, Provider.GITLAB: _gitlab, Provider.GITEA: _gitea,
    Provider.BITBUCKET: _bitbucket,
}
