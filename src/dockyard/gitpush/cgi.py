"""The CGI exchange with `git http-backend`, as pure functions: which git service a request
asks for, the program's argv and environment, and the CGI head of its answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

from dockyard.kernel.errors import DockyardError

GitService = Literal["git-upload-pack", "git-receive-pack"]
SERVICES: tuple[GitService, ...] = ("git-upload-pack", "git-receive-pack")
BACKEND_ARGV = ("git", "http-backend")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
SMART_ONLY = ("only git's smart HTTP protocol is served here: use `git clone`, `git fetch` or "
              "`git push` with git 1.6.6 or later")


class NotSmartGit(DockyardError):
    status_code = 404


@dataclass(frozen=True)
class GitRequest:
    """One HTTP request of a git client, as the CGI needs it. `rest`: the path after
    `{service}.git/` (`info/refs`, `git-upload-pack` or `git-receive-pack`)."""

    method: str
    rest: str
    query: str
    content_type: str | None = None
    content_length: str | None = None
    content_encoding: str | None = None
    git_protocol: str | None = None


@dataclass(frozen=True)
class CgiHead:
    status: int
    headers: list[tuple[str, str]]


def git_service(request: GitRequest) -> GitService:
    """The git service a request is part of; anything else (the dumb protocol) is refused."""
    if request.method == "GET" and request.rest == "info/refs":
        asked = parse_qs(request.query).get("service", [""])
        for service in SERVICES:
            if asked == [service]:
                return service
    if request.method == "POST":
        for service in SERVICES:
            if request.rest == service:
                return service
    raise NotSmartGit(SMART_ONLY)


def is_push(request: GitRequest) -> bool:
    return git_service(request) == "git-receive-pack"


def backend_env(request: GitRequest, root: Path, repo: str, user: str, path: str
                ) -> dict[str, str]:
    """The CGI environment of `git http-backend` for `request` to repository `repo` (a
    directory name under `root`), pushed or fetched by `user`. No system or user git config
    is read. Without CONTENT_LENGTH (a chunked body) the backend reads to the end."""
    env = {
        "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{repo}/{request.rest}", "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query, "REMOTE_USER": user, "PATH": path or DEFAULT_PATH,
        "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    optional = {"CONTENT_TYPE": request.content_type, "CONTENT_LENGTH": request.content_length,
                "HTTP_CONTENT_ENCODING": request.content_encoding,
                "HTTP_GIT_PROTOCOL": request.git_protocol}
    return env | {name: value for name, value in optional.items() if value is not None}


def split_head(buffer: bytes) -> tuple[bytes, bytes] | None:
    """The CGI head and what follows it, once the blank line that ends the head arrived."""
    ends = [(buffer.find(mark), mark) for mark in (b"\r\n\r\n", b"\n\n")]
    found = [(at, mark) for at, mark in ends if at >= 0]
    if not found:
        return None
    at, mark = min(found)
    return buffer[:at], buffer[at + len(mark):]


def parse_head(head: bytes) -> CgiHead:
    """Status (200 when the program sends none) and the other headers of a CGI answer."""
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
        elif name.strip():
            headers.append((name.strip(), value.strip()))
    return CgiHead(status, headers)
