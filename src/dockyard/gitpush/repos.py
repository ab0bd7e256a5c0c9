"""One bare repository per service under `data_dir/git/`, made on first use, with the
pre-receive hook that deploys a push."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dockyard.agent import process

CONFIG = (("receive.denyDeletes", "true"), ("http.receivepack", "true"),
          ("http.uploadpack", "true"), ("http.getanyfile", "false"))


def repo_root(data_dir: Path) -> Path:
    return data_dir / "git"


def repo_name(service_id: str) -> str:
    """The repository's directory: the service's id, so a renamed service keeps it."""
    return f"{service_id}.git"


def remove_repo(root: Path, service_id: str) -> None:
    """Forget a deleted service's repository (gone already is fine)."""
    shutil.rmtree(root / repo_name(service_id), ignore_errors=True)


def init_argv(path: Path) -> list[str]:
    return ["git", "init", "--bare", "--quiet", str(path)]


def config_argv(path: Path, key: str, value: str) -> list[str]:
    return ["git", "--git-dir", str(path), "config", key, value]


def head_argv(path: Path, branch: str) -> list[str]:
    """Point HEAD at the deployed branch, so a clone checks it out."""
    return ["git", "--git-dir", str(path), "symbolic-ref", "HEAD", f"refs/heads/{branch}"]


def hook_script(python: str) -> str:
    return f"#!{python}\nfrom dockyard.gitpush.hook import main\n\nraise SystemExit(main())\n"


def isolated_env(root: Path) -> dict[str, str]:
    """git run without the system's or a user's configuration."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null"}


def ensure_repo(root: Path, service_id: str, branch: str) -> Path:
    """The service's bare repository, created if missing, its HEAD on `branch` and its hook
    (this interpreter) in place. Safe to run again, and from two requests at once."""
    path = root / repo_name(service_id)
    env = isolated_env(root)
    if not (path / "HEAD").exists():
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        process.check(init_argv(path), env=env)
        for key, value in CONFIG:
            process.check(config_argv(path, key, value), env=env)
    process.check(head_argv(path, branch), env=env)
    _install_hook(path / "hooks" / "pre-receive", hook_script(sys.executable))
    return path


def _install_hook(path: Path, script: str) -> None:
    if path.exists() and path.read_text() == script:
        return
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_name(f".pre-receive.{os.getpid()}")
    temporary.write_text(script)
    temporary.chmod(0o755)
    temporary.replace(path)
