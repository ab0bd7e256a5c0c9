"""Where a deployment's code comes from besides an upload: a git repository or an image; and
the build context sent to a node.

Everything a user sends is checked before it touches a program: git URLs and refs before
git sees them, image references before Docker does.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from dockyard.agent import process
from dockyard.agent.models import ImageRef
from dockyard.deploy import dockerignore
from dockyard.deploy.dockerfile import BUILD_CONFIG
from dockyard.kernel.errors import DockyardError, InvalidInput
from dockyard.models.fields import GIT_REF, GIT_URL_HELP, IMAGE_REF, is_git_url

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


def git_fetch_argv(dest: Path, url: str, ref: str | None) -> list[str]:
    return ["git", "-C", str(dest), "fetch", "--depth", "1", "--", url, ref or "HEAD"]


def git_checkout_argv(dest: Path) -> list[str]:
    return ["git", "-C", str(dest), "checkout", "--detach", "FETCH_HEAD"]


def git_rev_parse_argv(dest: Path) -> list[str]:
    return ["git", "-C", str(dest), "rev-parse", "HEAD"]


def _git(argv: list[str], failure: str, url: str, timeout: float) -> str:
    try:
        result = process.run(argv, timeout=timeout, env={**os.environ, **GIT_ENV})
    except subprocess.TimeoutExpired as error:
        raise GitFailed(f"{failure}: git took longer than {timeout:.0f} s") from error
    if not result.ok:
        raise GitFailed(f"{failure}: {_reason(result.output).replace(url, redact_url(url))}")
    return result.output.strip()


def _reason(output: str) -> str:
    """git's first `fatal:` or `error:` line (the cause), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()] or ["no output"]
    return next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1])


def fetch_git(url: str, ref: str | None, dest: Path, timeout: float = 300) -> str:
    """Shallow-fetch `ref` (default: the remote HEAD) into `dest` and check it out; returns the
    commit sha. `.git` is removed afterwards so it never reaches a build."""
    validate_git_url(url)
    if ref is not None:
        validate_git_ref(ref)
    where = f"ref {ref or 'HEAD'!r} from {redact_url(url)}"
    _git(git_init_argv(dest), "git could not create a repository", url, timeout)
    _git(git_fetch_argv(dest, url, ref), f"git could not fetch {where}", url, timeout)
    _git(git_checkout_argv(dest), f"git could not check out {where}", url, timeout)
    sha = _git(git_rev_parse_argv(dest), f"git could not read the commit of {where}", url,
               timeout)
    shutil.rmtree(dest / ".git")
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

