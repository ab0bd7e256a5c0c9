"""Webhook deliveries as each forge sends them: headers and JSON bodies shaped as the
providers' documentation shows (trimmed to the fields around the ones Dockyard reads), signed
with a secret by each provider's scheme."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ZERO = "0" * 40


@dataclass(frozen=True)
class Sent:
    provider: str
    headers: dict[str, str]
    body: bytes
    delivery: str = field(default_factory=lambda: str(uuid.uuid4()))


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _names(url: str) -> tuple[str, str, str]:
    """(host, owner/name, web URL) of a clone URL."""
    parts = urlsplit(url)
    path = parts.path.strip("/").removesuffix(".git")
    return parts.hostname or "", path, f"{parts.scheme}://{parts.netloc}/{path}"


# GitHub: X-GitHub-Event, X-GitHub-Delivery, X-Hub-Signature-256 (sha256=HMAC hex).

def github(event: str, payload: dict[str, Any], secret: str, delivery: str | None = None
           ) -> Sent:
    body = json.dumps(payload).encode()
    delivery = delivery or str(uuid.uuid4())
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
               "X-GitHub-Hook-ID": "292430182", "User-Agent": "GitHub-Hookshot/044aadd",
               "Content-Type": "application/json",
               "X-Hub-Signature-256": "sha256=" + _hex(secret, body)}
    return Sent("github", headers, body, delivery)


def github_repo(url: str, repo_id: int = 186853002) -> dict[str, Any]:
    host, path, web = _names(url)
    return {"id": repo_id, "name": path.split("/")[-1], "full_name": path, "private": False,
            "html_url": web, "url": web, "clone_url": url, "git_url": f"git://{host}/{path}.git",
            "ssh_url": f"git@{host}:{path}.git", "svn_url": web, "default_branch": "main"}


def github_push(url: str, ref: str, after: str, deleted: bool = False) -> dict[str, Any]:
    return {"ref": ref, "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": ZERO if deleted else after, "created": False, "deleted": deleted,
            "forced": False, "base_ref": None,
            "compare": f"{github_repo(url)['html_url']}/compare/6113728f27ae...{after[:12]}",
            "commits": [], "head_commit": None if deleted else {"id": after},
            "repository": github_repo(url), "pusher": {"name": "octocat"},
            "sender": {"login": "octocat", "id": 1}}


def github_pull(url: str, action: str, number: int, head_sha: str, head_ref: str,
                fork_of: str | None = None) -> dict[str, Any]:
    base_repo = github_repo(url)
    head_repo = github_repo(fork_of, 999) if fork_of else base_repo
    return {"action": action, "number": number, "pull_request": {
        "url": f"{base_repo['url']}/pulls/{number}", "id": 1, "number": number,
        "state": "closed" if action == "closed" else "open", "title": "A change",
        "merged": action == "closed",
        "head": {"label": f"octocat:{head_ref}", "ref": head_ref, "sha": head_sha,
                 "repo": head_repo},
        "base": {"label": "octocat:main", "ref": "main",
                 "sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "repo": base_repo}},
        "repository": base_repo, "sender": {"login": "octocat", "id": 1}}


def github_ping(url: str) -> dict[str, Any]:
    return {"zen": "Keep it logically awesome.", "hook_id": 292430182,
            "hook": {"type": "Repository", "id": 292430182, "events": ["push"],
                     "config": {"content_type": "json", "insecure_ssl": "0"}},
            "repository": github_repo(url), "sender": {"login": "octocat", "id": 1}}


# GitLab: X-Gitlab-Event, X-Gitlab-Token (the secret itself), X-Gitlab-Event-UUID,
# Idempotency-Key (the same on retries).

def gitlab(event: str, payload: dict[str, Any], secret: str, delivery: str | None = None
           ) -> Sent:
    delivery = delivery or str(uuid.uuid4())
    headers = {"X-Gitlab-Event": event, "X-Gitlab-Token": secret,
               "X-Gitlab-Event-UUID": str(uuid.uuid4()), "Idempotency-Key": delivery,
               "X-Gitlab-Instance": "https://gitlab.example.com",
               "User-Agent": "GitLab/17.4.0", "Content-Type": "application/json"}
    return Sent("gitlab", headers, json.dumps(payload).encode(), delivery)


def gitlab_project(url: str, project_id: int = 15) -> dict[str, Any]:
    host, path, web = _names(url)
    return {"id": project_id, "name": path.split("/")[-1], "web_url": web,
            "git_ssh_url": f"git@{host}:{path}.git", "git_http_url": url,
            "namespace": path.split("/")[0], "path_with_namespace": path,
            "default_branch": "main", "homepage": web, "url": f"git@{host}:{path}.git",
            "ssh_url": f"git@{host}:{path}.git", "http_url": url}


def gitlab_push(url: str, ref: str, after: str, deleted: bool = False) -> dict[str, Any]:
    project = gitlab_project(url)
    kind = "tag_push" if ref.startswith("refs/tags/") else "push"
    return {"object_kind": kind, "event_name": kind,
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": ZERO if deleted else after, "ref": ref, "ref_protected": True,
            "checkout_sha": None if deleted else after, "user_id": 4, "user_name": "John Smith",
            "project_id": 15, "project": project, "commits": [], "total_commits_count": 0,
            "repository": {"name": project["name"], "url": project["url"],
                           "homepage": project["homepage"],
                           "git_http_url": url, "git_ssh_url": project["git_ssh_url"]}}


def gitlab_merge(url: str, action: str, iid: int, head_sha: str, head_ref: str,
                 from_fork: bool = False) -> dict[str, Any]:
    project = gitlab_project(url)
    return {"object_kind": "merge_request", "event_type": "merge_request",
            "user": {"id": 1, "username": "root"}, "project": project,
            "object_attributes": {
                "id": 99, "iid": iid, "target_branch": "main", "source_branch": head_ref,
                "source_project_id": 16 if from_fork else 15, "target_project_id": 15,
                "state": "merged" if action == "merge" else "opened", "action": action,
                "last_commit": {"id": head_sha, "message": "A change"},
                "source": gitlab_project(url, 16 if from_fork else 15),
                "target": project, "url": f"{project['web_url']}/-/merge_requests/{iid}"},
            "repository": {"name": project["name"], "url": project["url"],
                           "homepage": project["homepage"]}}


# Gitea / Forgejo: X-Gitea-Event, X-Gitea-Delivery, X-Gitea-Signature (HMAC hex, no prefix);
# Forgejo sends the same as X-Forgejo-*.

def gitea(event: str, payload: dict[str, Any], secret: str, delivery: str | None = None,
          forgejo: bool = False) -> Sent:
    body = json.dumps(payload).encode()
    delivery = delivery or str(uuid.uuid4())
    name = "Forgejo" if forgejo else "Gitea"
    headers = {f"X-{name}-Event": event, f"X-{name}-Event-Type": event,
               f"X-{name}-Delivery": delivery, f"X-{name}-Signature": _hex(secret, body),
               "Content-Type": "application/json"}
    return Sent("gitea", headers, body, delivery)


def gitea_repo(url: str, repo_id: int = 1) -> dict[str, Any]:
    host, path, web = _names(url)
    return {"id": repo_id, "owner": {"id": 1, "login": path.split("/")[0]},
            "name": path.split("/")[-1], "full_name": path, "private": False,
            "html_url": web, "ssh_url": f"git@{host}:{path}.git", "clone_url": url,
            "default_branch": "main"}


def gitea_push(url: str, ref: str, after: str) -> dict[str, Any]:
    return {"ref": ref, "before": "28e1879d029cb852e4844d9c718537df08844e03", "after": after,
            "compare_url": "", "commits": [], "total_commits": 0, "head_commit": None,
            "repository": gitea_repo(url), "pusher": {"id": 1, "login": "gitea"},
            "sender": {"id": 1, "login": "gitea"}}


def gitea_pull(url: str, action: str, number: int, head_sha: str, head_ref: str,
               from_fork: bool = False) -> dict[str, Any]:
    repo = gitea_repo(url)
    head_repo = gitea_repo(url, 2) if from_fork else repo
    return {"action": action, "number": number, "pull_request": {
        "id": 7, "number": number, "state": "closed" if action == "closed" else "open",
        "merged": action == "closed",
        "head": {"label": head_ref, "ref": head_ref, "sha": head_sha, "repo_id": head_repo["id"],
                 "repo": head_repo},
        "base": {"label": "main", "ref": "main", "sha": ZERO[:-1] + "1", "repo_id": 1,
                 "repo": repo}},
        "repository": repo, "sender": {"id": 1, "login": "gitea"}}


# Bitbucket Cloud: X-Event-Key, X-Request-UUID, X-Hub-Signature (sha256=HMAC hex).

def bitbucket(event: str, payload: dict[str, Any], secret: str, delivery: str | None = None
              ) -> Sent:
    body = json.dumps(payload).encode()
    delivery = delivery or str(uuid.uuid4())
    headers = {"X-Event-Key": event, "X-Request-UUID": delivery,
               "X-Hook-UUID": str(uuid.uuid4()), "X-Attempt-Number": "1",
               "User-Agent": "Bitbucket-Webhooks/2.0", "Content-Type": "application/json",
               "X-Hub-Signature": "sha256=" + _hex(secret, body)}
    return Sent("bitbucket", headers, body, delivery)


def bitbucket_repo(url: str, full_name: str | None = None) -> dict[str, Any]:
    _host, path, web = _names(url)
    return {"type": "repository", "full_name": full_name or path, "name": path.split("/")[-1],
            "uuid": "{7a5e1a2c-0f3b-4a7e-9d6e-2b8f0e8c1d11}", "is_private": True,
            "links": {"html": {"href": web}, "self": {"href": f"{web}/api"}}}


def bitbucket_push(url: str, branch: str | None, commit: str, kind: str = "branch",
                   deleted: bool = False) -> dict[str, Any]:
    ref = {"type": kind, "name": branch,
           "target": {"type": "commit", "hash": commit, "message": "A change\n"}}
    change = {"new": None if deleted else ref, "old": ref if deleted else None,
              "created": not deleted, "closed": deleted, "forced": False, "commits": [],
              "truncated": False}
    return {"actor": {"display_name": "Emma", "type": "user"},
            "repository": bitbucket_repo(url), "push": {"changes": [change]}}


def bitbucket_pull(url: str, number: int, head_sha: str, head_ref: str,
                   from_fork: bool = False) -> dict[str, Any]:
    repo = bitbucket_repo(url)
    source_repo = bitbucket_repo(url, "someone/fork") if from_fork else repo
    return {"actor": {"display_name": "Emma", "type": "user"}, "repository": repo,
            "pullrequest": {
                "id": number, "title": "A change", "state": "OPEN", "type": "pullrequest",
                "source": {"branch": {"name": head_ref}, "commit": {"hash": head_sha[:12]},
                           "repository": source_repo},
                "destination": {"branch": {"name": "main"},
                                "commit": {"hash": "ce5965ddd289"}, "repository": repo}}}
