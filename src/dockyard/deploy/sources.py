"""Where a deployment's code comes from besides an upload: a git repository or an image; and
the build context sent to a node.

Everything a user sends is checked before it touches a program: git URLs and refs before
git sees them, image references before Docker does.
"""
from __future__ import annotations

import base64
import io
import os
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import process
from dockyard.agent.models import ImageRef
from dockyard.deploy import dockerignore
from dockyard.deploy.dockerfile import BUILD_CONFIG
from dockyard.kernel.errors import DockyardError, InvalidInput
from dockyard.kernel.security import SecretBox
from dockyard.models.deployment_plan import FromGit, Origin
from dockyard.models.fields import GIT_REF, GIT_URL_HELP, IMAGE_REF, is_git_url
from dockyard.models.tables import RepoLink

# Never wait for a person: no credential prompt, no ssh host-key or passphrase question.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}


class GitFailed(DockyardError):
    """git could not fetch or check out the source; the message is git's own reason."""


def validate_git_url(url: str) -> str:
    if not is_git_url(url):
        raise InvalidInput(f"{redact_url(url)!r} is {GIT_URL_HELP}")
    return url


def is_local_git(url: str) -> bool:
    """A repository on the control plane's own disk (a path or file://)."""
    return url.startswith(("/", "file:"))


def validate_git_ref(ref: str) -> str:
    if len(ref) > 255 or not re.fullmatch(GIT_REF, ref):
        raise InvalidInput(f"{ref!r} is not a git ref; use letters, digits, '.', '_', '/' and "
                           "'-', not starting with '-', without '..', at most 255 characters")
    return ref


def redact_url(url: str) -> str:
    """`url` without the password or token it may carry."""
    return re.sub(r"(?<=://)[^@/]*@", "***@", url)


def git_init_argv(dest: Path) -> list[str]:
    return ["git", "init", "--quiet", "--", str(dest)]


def git_fetch_argv(dest: Path, url: str, ref: str | None, depth: int = 1) -> list[str]:
    return ["git", "-C", str(dest), "fetch", "--depth", str(depth), "--", url, ref or "HEAD"]


def git_checkout_argv(dest: Path, what: str = "FETCH_HEAD") -> list[str]:
    return ["git", "-C", str(dest), "checkout", "--detach", what]


def git_resolve_argv(dest: Path, commit: str) -> list[str]:
    return ["git", "-C", str(dest), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"]


def git_rev_parse_argv(dest: Path) -> list[str]:
    return ["git", "-C", str(dest), "rev-parse", "HEAD"]


def _git(argv: list[str], failure: str, url: str, timeout: float,
         auth: dict[str, str] | None = None) -> str:
    try:
        result = process.run(argv, timeout=timeout, env={**os.environ, **GIT_ENV, **(auth or {})})
    except subprocess.TimeoutExpired as error:
        raise GitFailed(f"{failure}: git took longer than {timeout:.0f} s") from error
    if not result.ok:
        raise GitFailed(f"{failure}: {_reason(result.output).replace(url, redact_url(url))}")
    return result.output.strip()


def _reason(output: str) -> str:
    """git's first `fatal:` or `error:` line (the cause), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()] or ["no output"]
    return next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1])


COMMIT = r"[0-9a-f]{7,40}"
# How far back a branch is fetched to find a commit given by a prefix (Bitbucket's short sha).
PREFIX_DEPTH = 50


def validate_commit(commit: str) -> str:
    if not re.fullmatch(COMMIT, commit):
        raise InvalidInput(f"{commit!r} is not a commit; use 7 to 40 lowercase hex digits")
    return commit


@dataclass(frozen=True)
class GitCredential:
    """A repository link's credential for one fetch: an HTTPS token (`user:token`, or a bare
    token sent as user `x-access-token`) or an SSH deploy key's private key text."""

    kind: Literal["token", "deploy_key"]
    secret: str


async def link_credential(s: AsyncSession, box: SecretBox, source: Origin
                          ) -> GitCredential | None:
    """The credential of the repository link a git source names, decrypted for its fetch."""
    if not isinstance(source, FromGit) or source.link_id is None:
        return None
    link = await s.get(RepoLink, source.link_id)
    if link is None or link.credential_kind not in ("token", "deploy_key"):
        return None
    kind: Literal["token", "deploy_key"] = link.credential_kind  # type: ignore[assignment]
    return GitCredential(kind, box.decrypt(link.credential_ciphertext))


def token_env(token: str) -> dict[str, str]:
    """git configuration, by environment (never argv), sending the token as Basic auth."""
    user, colon, password = token.partition(":")
    pair = f"{user}:{password}" if colon else f"x-access-token:{token}"
    header = "Authorization: Basic " + base64.b64encode(pair.encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": header}


def ssh_key_env(key_file: Path, known_hosts: Path | None = None) -> dict[str, str]:
    """ssh with only the deploy key; a host's key is trusted on first use, then pinned in
    `known_hosts` (default: the user's)."""
    hosts = f" -o UserKnownHostsFile={shlex.quote(str(known_hosts))}" if known_hosts else ""
    return {"GIT_SSH_COMMAND": f"ssh -i {shlex.quote(str(key_file))} -o IdentitiesOnly=yes "
                               f"-o BatchMode=yes -o StrictHostKeyChecking=accept-new{hosts}"}


@contextmanager
def credential_env(credential: GitCredential | None, known_hosts: Path | None = None
                   ) -> Iterator[dict[str, str]]:
    """The environment that gives git the credential; a deploy key lives in a mode-600 file
    only while git runs."""
    if credential is None or credential.kind == "token":
        yield token_env(credential.secret) if credential else {}
        return
    with tempfile.TemporaryDirectory(prefix="dockyard-key-") as directory:
        key_file = Path(directory) / "key"
        key_file.touch(mode=0o600)
        key_file.write_text(credential.secret.strip() + "\n")
        if known_hosts:
            known_hosts.parent.mkdir(parents=True, exist_ok=True)
        yield ssh_key_env(key_file, known_hosts)


def fetch_git(url: str, ref: str | None, dest: Path, timeout: float = 300,
              commit: str | None = None, credential: GitCredential | None = None,
              known_hosts: Path | None = None) -> str:
    """Shallow-fetch `ref` (default: the remote HEAD), or exactly `commit` reached from it,
    into `dest` and check it out; returns the commit sha. `.git` is removed afterwards so it
    never reaches a build."""
    validate_git_url(url)
    if ref is not None:
        validate_git_ref(ref)
    if commit is not None:
        validate_commit(commit)
    _git(git_init_argv(dest), "git could not create a repository", url, timeout)
    with credential_env(credential, known_hosts) as auth:
        fetch = _Fetch(url, ref, dest, timeout, auth)
        sha = fetch.of_ref() if commit is None else fetch.of_commit(commit)
    shutil.rmtree(dest / ".git")
    return sha


@dataclass(frozen=True)
class _Fetch:
    url: str
    ref: str | None
    dest: Path
    timeout: float
    auth: dict[str, str]

    def git(self, argv: list[str], failure: str) -> str:
        return _git(argv, failure, self.url, self.timeout, self.auth)

    def where(self, what: str | None = None) -> str:
        return f"{what or self.named} from {redact_url(self.url)}"

    @property
    def named(self) -> str:
        return f"ref {self.ref or 'HEAD'!r}"

    def of_ref(self) -> str:
        self.git(git_fetch_argv(self.dest, self.url, self.ref),
                 f"git could not fetch {self.where()}")
        self.git(git_checkout_argv(self.dest), f"git could not check out {self.where()}")
        return self.git(git_rev_parse_argv(self.dest),
                        f"git could not read the commit of {self.where()}")

    def of_commit(self, commit: str) -> str:
        """The commit by its full sha when the server allows it, else found on the ref."""
        try:
            if len(commit) < 40:
                raise GitFailed("a prefix cannot be fetched by itself")
            self.git(git_fetch_argv(self.dest, self.url, commit), "")
        except GitFailed:
            self.git(git_fetch_argv(self.dest, self.url, self.ref, PREFIX_DEPTH),
                     f"git could not fetch {self.where()}")
        where = self.where(f"commit {commit} of {self.named}")
        sha = self.git(git_resolve_argv(self.dest, commit), f"git could not find {where}")
        self.git(git_checkout_argv(self.dest, sha), f"git could not check out {where}")
        return sha


# Images.

_IMAGE_REF = re.compile(IMAGE_REF)
IMAGE_EXAMPLE = "use a form like 'registry.example.com:5000/team/app:1.2' or 'nginx:1.27'"


def _split_tag(reference: str) -> tuple[str, str]:
    repository, colon, tag = reference.rpartition(":")
    if colon and "/" not in tag:
        return repository, tag
    return reference, "latest"


def validate_image_reference(ref: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; the tag defaults to 'latest'."""
    repository, tag = _split_tag(ref)
    if not ref or any(c.isspace() or not c.isprintable() for c in ref):
        raise InvalidInput(f"{ref!r} is not an image reference: no spaces; {IMAGE_EXAMPLE}")
    if "@" in ref:
        raise InvalidInput(f"image {ref!r}: digests (name@sha256:...) are not supported yet; "
                           "use a tag such as 'app:1.2'")
    if repository != repository.lower():
        raise InvalidInput(f"image {ref!r}: the repository name must be lowercase")
    try:
        if len(ref) > 512 or not _IMAGE_REF.fullmatch(ref):
            raise ValueError(ref)
        ImageRef(repository=repository, tag=tag)
    except (ValueError, ValidationError) as error:
        raise InvalidInput(f"{ref!r} is not an image reference; {IMAGE_EXAMPLE}") from error
    return repository, tag


# The build context: a deterministic tar, so an unchanged tree hits the layer cache.

GENERATED_DOCKERFILE = "Dockerfile.dockyard"
CONTEXT_MTIME = 946_684_800  # 2000-01-01: after 1980, which zip-based tools need


def _walk(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.iterdir(), key=lambda child: child.name):
        if path.name == ".git":
            continue
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)


def _context_info(path: Path, name: str) -> tarfile.TarInfo | None:
    """A normalised header: fixed time, owner root, modes 0755 or 0644. None: skip it."""
    info = tarfile.TarInfo(name)
    info.mtime, status = CONTEXT_MTIME, path.lstat()
    if stat.S_ISLNK(status.st_mode):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
    elif stat.S_ISDIR(status.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif stat.S_ISREG(status.st_mode):
        info.size, info.mode = status.st_size, 0o755 if status.st_mode & 0o111 else 0o644
    else:
        return None
    return info


def _add_path(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = _context_info(path, name)
    if info is not None and info.isreg():
        with path.open("rb") as content:
            tar.addfile(info, content)
    elif info is not None:
        tar.addfile(info)


def build_context(app_dir: Path, dest: Path, dockerfile_text: str | None,
                  dockerfile: str = "Dockerfile") -> str:
    """Write `app_dir` (without `.git`) as an uncompressed tar to `dest`, plus the generated
    Dockerfile when given. Returns the Dockerfile name to build with."""
    if dockerfile == GENERATED_DOCKERFILE:  # the agent hands that one its package config
        raise InvalidInput(f"{GENERATED_DOCKERFILE} is Dockyard's name; rename the Dockerfile")
    if dockerfile_text is None and not (app_dir / dockerfile).is_file():
        raise InvalidInput(f"the app has no {dockerfile} and none was generated for it")
    ignored = dockerignore.for_app(app_dir, never=() if dockerfile_text is None else (
        GENERATED_DOCKERFILE, BUILD_CONFIG))  # the generated file and the builder's config
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(app_dir):
            name = path.relative_to(app_dir).as_posix()
            if not ignored(name):
                _add_path(tar, path, name)
        if dockerfile_text is None:
            return dockerfile
        data = dockerfile_text.encode()
        info = tarfile.TarInfo(GENERATED_DOCKERFILE)
        info.size, info.mode, info.mtime = len(data), 0o644, CONTEXT_MTIME
        tar.addfile(info, io.BytesIO(data))
    return GENERATED_DOCKERFILE

