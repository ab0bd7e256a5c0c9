"""The build machine's package configuration, handed to a generated Dockerfile's build stage.

pip and npm on the machine that builds may be set up with other indexes and a CA (a mirror,
an intercepting proxy). The agent adds their http(s) index settings and CA bundle to the build
context under `.dockyard-build/`; only the generated Dockerfile's dependency stage reads them,
so neither they nor any credential in them reach the final image.
"""

from __future__ import annotations

import configparser
import io
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

BUILD_CONFIG = ".dockyard-build"  # the directory the generated Dockerfile copies
GENERATED_DOCKERFILE = "Dockerfile.dockyard"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
_URL = re.compile(r"https?://[^\s\"'\\]+")
_PIP_FILES = ("/etc/xdg/pip/pip.conf", "/etc/pip.conf", "~/.pip/pip.conf",
              "~/.config/pip/pip.conf")
_NPM_FILES = ("/usr/etc/npmrc", "/usr/local/etc/npmrc", "/etc/npmrc", "~/.npmrc")


@dataclass(frozen=True)
class PackageConfig:
    """What a build needs to reach the machine's package indexes: only http(s) URLs."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    npm_registry: str | None = None
    ca_files: tuple[Path, ...] = ()


def _urls(value: str | None) -> tuple[str, ...]:
    return tuple(word for word in (value or "").split() if _URL.fullmatch(word))


def _pip_settings(env: Mapping[str, str]) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    files = [*_PIP_FILES, env.get("PIP_CONFIG_FILE", "")]
    parser.read([os.path.expanduser(name) for name in files if name])
    found = {key: parser.get(section, key) for section in ("global", "install")
             if parser.has_section(section) for key in parser.options(section)}
    for key in ("index-url", "extra-index-url", "cert"):
        found[key] = env.get(f"PIP_{key.upper().replace('-', '_')}", found.get(key, ""))
    return found


def _npm_settings(env: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in (*_NPM_FILES, env.get("NPM_CONFIG_USERCONFIG", "")):
        path = Path(os.path.expanduser(name)) if name else None
        if path is not None and path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                key, equals, value = line.partition("=")
                if equals and not line.lstrip().startswith((";", "#")):
                    found[key.strip()] = value.strip().strip("\"'")
    for key in ("registry", "cafile"):
        found[key] = env.get(f"npm_config_{key}", env.get(f"NPM_CONFIG_{key.upper()}",
                                                          found.get(key, "")))
    return found


def machine_config(env: Mapping[str, str] = os.environ) -> PackageConfig:
    """This machine's pip and npm settings that a build container can use."""
    pip, npm = _pip_settings(env), _npm_settings(env)
    cas = [Path(name) for name in (pip.get("cert"), npm.get("cafile")) if name]
    cas = [path for path in dict.fromkeys(cas or [SYSTEM_CA]) if path.is_file()]
    index = _urls(pip.get("index-url"))
    registry = _urls(npm.get("registry"))
    return PackageConfig(index[0] if index else None, _urls(pip.get("extra-index-url")),
                         registry[0] if registry else None, tuple(cas))


def config_files(config: PackageConfig) -> dict[str, bytes]:
    """The files of `.dockyard-build/`: pip.conf, npmrc and, if the machine has one, ca.crt."""
    ca = f"/{BUILD_CONFIG}/ca.crt"
    pip = ["[global]", *([f"cert = {ca}"] if config.ca_files else []),
           *([f"index-url = {config.index_url}"] if config.index_url else []),
           *([f"extra-index-url = {' '.join(config.extra_index_urls)}"]
             if config.extra_index_urls else [])]
    npm = [*([f"cafile={ca}"] if config.ca_files else []),
           *([f"registry={config.npm_registry}"] if config.npm_registry else [])]
    files = {"pip.conf": "\n".join(pip) + "\n", "npmrc": "\n".join(npm) + "\n"}
    encoded = {name: text.encode() for name, text in files.items()}
    if config.ca_files:
        encoded["ca.crt"] = b"\n".join(path.read_bytes() for path in config.ca_files)
    return encoded


def add_to_context(context: IO[bytes], config: PackageConfig) -> None:
    """Append `.dockyard-build/` to an uncompressed tar build context, then rewind it."""
    with tarfile.open(fileobj=context, mode="a") as tar:
        for name, data in config_files(config).items():
            info = tarfile.TarInfo(f"{BUILD_CONFIG}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)


@dataclass(frozen=True)
class BuildOptions:
    """Per build: build arguments (KEY=value) and the limits of the build's containers."""

    build_args: tuple[str, ...] = ()
    memory_mb: int | None = None
    cpus: int | None = None

    def engine_build_args(self) -> dict[str, str] | None:
        pairs = (arg.partition("=") for arg in self.build_args)
        return {key: value for key, _, value in pairs} or None

    def container_limits(self, machine_cpus: int | None = None) -> dict[str, int | str] | None:
        """The legacy builder's limits: memory without swap; the first `cpus` CPUs."""
        limits: dict[str, int | str] = {}
        if self.memory_mb is not None:
            limits["memory"] = limits["memswap"] = self.memory_mb * 1024 * 1024
        if self.cpus is not None:
            limits["cpusetcpus"] = f"0-{min(self.cpus, machine_cpus or os.cpu_count() or 1) - 1}"
        return limits or None
