"""Offline base images: a Debian root file system from this machine's own apt mirror.

`debootstrap` builds it, the tarball is cached, and Docker imports it. No registry is needed.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

from pydantic_settings import BaseSettings, SettingsConfigDict

from dockyard.agent import commands, process
from dockyard.agent.models import ImageRef
from dockyard.agent.runtime import DockerRuntime
from dockyard.models.fields import Whole

APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")
APT_SOURCES_LIST = Path("/etc/apt/sources.list")
_TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt",
            "var/lib/apt/lists")


class ImageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCKYARD_IMAGES_", extra="ignore")

    cache_dir: Path = Path("/var/cache/dockyard/images")
    suite: Annotated[str, Whole(r"[a-z]+", "use a Debian suite, like 'bookworm'")] | None = None


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


@dataclass(frozen=True)
class Recipe:
    """One image: its repository, the Debian packages on top of minbase, and import changes."""

    name: str
    packages: tuple[str, ...]
    changes: tuple[str, ...] = ()
    directories: tuple[str, ...] = ()  # made in the root file system, e.g. a data directory
    # Installed afterwards by apt inside the root: debootstrap's resolver cannot pick among
    # virtual packages (Debian's npm needs that).
    apt_installed: tuple[str, ...] = ()
    entrypoint: str = ""  # written to /usr/local/bin/dockyard-NAME (part of the cache key)

    def repository(self) -> str:
        return f"dockyard/{self.name}"

    def __str__(self) -> str:
        """What the cache key hashes: every field, the entrypoint only when there is one (so
        recipes without one keep the tarballs cached before it existed)."""
        fields = repr(replace(self, entrypoint="")).replace(", entrypoint=''", "")
        return fields + (f"|{self.entrypoint}" if self.entrypoint else "")


# Honours the official image's variables (POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD), so
# a stateful service runs the same on it; the user and database are SQL identifiers.
POSTGRES_ENTRYPOINT = """#!/bin/sh
set -e
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
case "$user$db" in *[!a-z0-9_]*) echo "POSTGRES_USER/POSTGRES_DB: a-z, 0-9, _ only" >&2; exit 2;; esac
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA"
    printf '%s' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" > /tmp/pw && chown postgres /tmp/pw
    su postgres -s /bin/sh -c "$bin/initdb -D $PGDATA -U $user -E UTF8 --locale=C.UTF-8 --auth=scram-sha-256 --pwfile=/tmp/pw"
    rm -f /tmp/pw
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE $db OWNER $user;" | su postgres -s /bin/sh -c "$bin/postgres --single -D $PGDATA postgres" > /dev/null
    fi
fi
exec su postgres -s /bin/sh -c "exec $bin/postgres -D $PGDATA -c listen_addresses=*"
"""  # noqa: E501


RECIPES = {
    "base": Recipe("base", ("python3", "ca-certificates"), ('CMD ["python3"]',)),
    "python": Recipe("python", ("python3", "python3-pip", "python3-venv", "ca-certificates"),
                     ('CMD ["python3"]',)),
    "node": Recipe("node", ("nodejs", "ca-certificates"), ('CMD ["node"]',),
                   apt_installed=("npm",)),
    "redis": Recipe("redis", ("redis-server",),
                    ('CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]',),
                    directories=("data",)),
    "postgres": Recipe("postgres", ("postgresql",),
                       ("ENV PGDATA=/var/lib/postgresql/data",
                        'CMD ["/usr/local/bin/dockyard-postgres"]'),
                       entrypoint=POSTGRES_ENTRYPOINT),
}


def parse_deb822(text: str) -> list[AptSource]:
    """The `deb` entries of a deb822 `.sources` file."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(_fields(stanza))
        if "deb" in fields.get("types", "").split() and fields.get("uris"):
            suites = tuple(fields.get("suites", "").split())
            components = tuple(fields.get("components", "").split())
            sources.append(AptSource(fields["uris"].split()[0], suites, components))
    return sources


def _fields(stanza: str) -> Iterable[tuple[str, str]]:
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        key, _, value = line.partition(":")
        yield key.strip().lower(), value.strip()


def parse_one_line(text: str) -> list[AptSource]:
    """The `deb` lines of a classic sources.list (options in brackets are ignored)."""
    sources = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            sources.append(AptSource(words[1], (words[2],), tuple(words[3:])))
    return sources


def main_mirror(sources: list[AptSource], suite: str | None = None) -> tuple[str, str]:
    """The mirror and release suite to bootstrap from: the first plain suite (no `-updates`)."""
    for source in sources:
        for candidate in source.suites:
            if "-" not in candidate and "/" not in candidate and suite in (None, candidate):
                return source.uri, candidate
    raise RuntimeError("no Debian mirror found in /etc/apt/sources.list.d or sources.list")


def mirror_and_suite(sources: list[AptSource], suite: str | None) -> tuple[str, str]:
    """The machine's main mirror, and `suite` (another Debian release it serves, when it is not
    one the machine uses) or the machine's own release."""
    mirror, own = main_mirror(sources)
    listed = [candidate for source in sources for candidate in source.suites]
    return (main_mirror(sources, suite) if suite in listed else (mirror, suite or own))


def machine_sources(directory: Path = APT_SOURCES_DIR, classic: Path = APT_SOURCES_LIST
                    ) -> list[AptSource]:
    found: list[AptSource] = []
    for path in sorted(directory.glob("*.sources")):
        found += parse_deb822(path.read_text())
    for path in dict.fromkeys([classic, *sorted(directory.glob("*.list"))]):
        if path.is_file():
            found += parse_one_line(path.read_text())
    return found


def debootstrap_argv(recipe: Recipe, suite: str, mirror: str, target: Path, cache: Path
                     ) -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--include={','.join(recipe.packages)}",
            f"--cache-dir={cache}", suite, str(target), mirror]


def apt_install_argvs(recipe: Recipe, root: Path) -> list[list[str]]:
    """apt inside the new root, from the mirror debootstrap wrote into its sources.list."""
    if not recipe.apt_installed:
        return []
    apt = ["chroot", str(root), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q"]
    return [[*apt, "update"],
            [*apt, "install", "-y", "--no-install-recommends", *recipe.apt_installed]]


def tar_argv(root: Path, tarball: Path) -> list[str]:
    return ["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."]


def tarball_name(recipe: Recipe, suite: str, mirror: str) -> str:
    fingerprint = hashlib.sha256(f"{recipe}|{suite}|{mirror}".encode()).hexdigest()[:12]
    return f"{recipe.name}-{suite}-{fingerprint}.tar"




def _finish_rootfs(recipe: Recipe, root: Path) -> None:
    for relative in _TRIMMED:
        shutil.rmtree(root / relative, ignore_errors=True)
    for relative in recipe.directories:
        (root / relative).mkdir(parents=True, exist_ok=True)
    if recipe.entrypoint:
        entry = root / f"usr/local/bin/dockyard-{recipe.name}"
        entry.write_text(recipe.entrypoint)
        entry.chmod(0o755)


@dataclass(frozen=True)
class Tarball:
    recipe: Recipe
    path: Path
    suite: str


def cached_tarball(recipe: Recipe, settings: ImageSettings) -> Tarball:
    """Where `recipe`'s tarball is (or would be) cached for this machine's mirror."""
    mirror, suite = mirror_and_suite(machine_sources(), settings.suite)
    return Tarball(recipe, settings.cache_dir / tarball_name(recipe, suite, mirror), suite)


def bootstrap_tarball(recipe: Recipe, settings: ImageSettings) -> Tarball:
    """The cached root file system tarball of `recipe`, built first if it is not there; one
    build at a time per recipe (others wait for it and take its tarball)."""
    cached = cached_tarball(recipe, settings)
    if cached.path.exists():
        return cached
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with (settings.cache_dir / f"build-{recipe.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return cached if cached.path.exists() else _build_tarball(recipe, settings, cached)


def _build_tarball(recipe: Recipe, settings: ImageSettings, cached: Tarball) -> Tarball:
    tarball, suite = cached.path, cached.suite
    mirror, _ = mirror_and_suite(machine_sources(), settings.suite)
    work = settings.cache_dir / f"build-{recipe.name}"
    shutil.rmtree(work, ignore_errors=True)
    (settings.cache_dir / "debs").mkdir(parents=True, exist_ok=True)
    try:
        process.check(debootstrap_argv(recipe, suite, mirror, work, settings.cache_dir / "debs"),
                      timeout=1800)
        for argv in apt_install_argvs(recipe, work):
            process.check(argv, timeout=1800)
        _finish_rootfs(recipe, work)
        partial = tarball.with_suffix(".partial")
        process.check(tar_argv(work, partial), timeout=600)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Tarball(recipe, tarball, suite)


def import_tarball(runtime: DockerRuntime, tarball: Tarball) -> ImageRef:
    """Import a cached root file system into the Docker behind `runtime`, tagged by suite."""
    target = ImageRef(repository=tarball.recipe.repository(), tag=tarball.suite)
    with tarball.path.open("rb") as rootfs:
        chunks = iter(lambda: rootfs.read(1024 * 1024), b"")
        runtime.execute(commands.import_image(chunks, target, tarball.recipe.changes))
    return target
