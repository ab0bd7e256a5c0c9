"""deploy, rollback, releases, deployments follow and deploy-configs: requests to the API,
whose deploy progress streams back as Server-Sent Events (see `sse`)."""

from __future__ import annotations

import os
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from dockyard.cli.client import ApiClient, ApiError, CliError, seg
from dockyard.cli.output import JsonFlag, console, done, errors, show, show_one
from dockyard.cli.resources import ProjectOpt, ServiceOpt, services
from dockyard.cli.sse import StreamClient, watch

deployments = typer.Typer(help="Deployments: follow one as it runs.", no_args_is_help=True)
deploy_configs = typer.Typer(help="Saved, named deploy parameters.", no_args_is_help=True)

RELEASE_COLUMNS = ["live", "id", "status", "source_kind", "image_tag", "created_at", "error"]
CONFIG_COLUMNS = ["name", "project", "service", "params"]

PathArg = Annotated[Path | None, typer.Argument(
    help="A directory to pack and upload (one source: PATH, --git or --image).",
    show_default=False)]
GitOpt = Annotated[str | None, typer.Option("--git", help="A git repository URL to build.")]
RefOpt = Annotated[str | None, typer.Option("--ref", help="Branch, tag or commit (with --git).")]
ImageOpt = Annotated[str | None, typer.Option("--image", help="An image reference to run.")]
ServerOpt = Annotated[list[str] | None, typer.Option(
    "--server", help="Target server name or id; repeat for several. Default: the API decides.")]
ConfigOpt = Annotated[str | None, typer.Option("--config", help="A saved deploy config.")]
PortOpt = Annotated[int | None, typer.Option(
    "--port", min=1, max=65535, help="Port the app listens on.")]
HealthOpt = Annotated[str | None, typer.Option(
    "--health-path", help="HTTP path that answers 2xx when the app is healthy.")]
RootOpt = Annotated[str | None, typer.Option(
    "--root", help="Build this subdirectory of the source (an app in a monorepo).")]
DockerfileOpt = Annotated[str | None, typer.Option(
    "--dockerfile", help="Build with this Dockerfile (a path inside the app).")]
BuildArgOpt = Annotated[list[str] | None, typer.Option(
    "--build-arg", help="KEY=value handed to the build (Dockerfile ARG); repeat for several.")]
CreateOpt = Annotated[bool, typer.Option(
    "--create", help="Create the project and the service first when they do not exist.")]
EventsJson = Annotated[bool, typer.Option("--json", help="Print each event as one JSON line.")]


@dataclass
class Packed:
    """What went into an archive: its member count, and the symlinks left out."""

    members: int = 0
    skipped: list[str] = field(default_factory=list)


def _members(root: Path, packed: Packed) -> Iterator[Path]:
    """Directories, files and inward symlinks under root, in a stable order; never `.git`,
    never a symlink that leaves the tree, never into a symlinked directory."""
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        base = Path(directory)
        for name in dirs + sorted(f for f in files if f != ".git"):
            path = base / name
            if path.is_symlink() and not _inward(root, path):
                packed.skipped.append(path.relative_to(root).as_posix())
            elif path.is_symlink() or path.is_dir() or path.is_file():
                yield path


def _inward(root: Path, link: Path) -> bool:
    target = os.readlink(link)
    if os.path.isabs(target):
        return False
    return (link.parent / target).resolve().is_relative_to(root.resolve())


def _owned_by_nobody(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Keep the mode (exec bits) but no local user or group names."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(root: Path, handle: IO[bytes]) -> Packed:
    """Write root as a tar.gz into handle."""
    packed = Packed()
    with tarfile.open(fileobj=handle, mode="w:gz") as tar:
        for path in _members(root, packed):
            arcname = path.relative_to(root).as_posix()
            tar.add(path, arcname=arcname, recursive=False, filter=_owned_by_nobody)
            packed.members += 1
    return packed


@contextmanager
def packed_archive(root: Path, quiet: bool) -> Iterator[IO[bytes]]:
    """A temporary tar.gz of root, rewound for upload; removed afterwards."""
    with tempfile.TemporaryFile() as handle:
        packed = pack(root, handle)
        if packed.skipped:
            errors.print(f"warning: left out symlinks that point outside {root}: "
                         f"{', '.join(packed.skipped)}", markup=False, highlight=False)
        if not quiet:
            console.print(f"Uploading {root} ({packed.members} entries, "
                          f"{handle.tell() / 1024:.1f} KiB)", markup=False, highlight=False)
        handle.seek(0)
        yield handle


def _one_source(path: Path | None, git: str | None, ref: str | None, image: str | None) -> None:
    given = [name for name, value in (("PATH", path), ("--git", git), ("--image", image))
             if value is not None]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise CliError(f"give exactly one source: a directory PATH, --git URL or --image REF{got}")
    if ref is not None and git is None:
        raise CliError("--ref only goes with --git")
    if path is not None and not path.is_dir():
        raise CliError(f"{path} is not a directory")


def _params(port: int | None, health_path: str | None, root: str | None = None,
            dockerfile: str | None = None, build_args: list[str] | None = None
            ) -> dict[str, Any] | None:
    pairs = (("port", port), ("health_path", health_path), ("root", root),
             ("dockerfile", dockerfile), ("build_args", build_args or None))
    params = {k: v for k, v in pairs if v is not None}
    return params or None


def _query(project: str, service: str, servers: list[str] | None, config: str | None,
           params: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters of an archive upload; unset ones left out."""
    query = [("project", project), ("service", service)]
    query += [("server", s) for s in servers or []]
    query += [("config_name", config)] if config is not None else []
    query += [("build_arg", arg) for arg in (params or {}).get("build_args", [])]
    return query + [(k, str(v)) for k, v in (params or {}).items() if k != "build_args"]


def _json_source(git: str | None, ref: str | None, image: str | None) -> dict[str, Any]:
    if git is not None:
        return {"kind": "git", "url": git, "ref": ref}
    return {"kind": "image", "image": image}


def deploy(
    project: ProjectOpt, service: ServiceOpt, path: PathArg = None, git: GitOpt = None,
    ref: RefOpt = None, image: ImageOpt = None, server: ServerOpt = None,
    config: ConfigOpt = None, port: PortOpt = None, health_path: HealthOpt = None,
    root: RootOpt = None, dockerfile: DockerfileOpt = None, build_arg: BuildArgOpt = None,
    create: CreateOpt = False, as_json: EventsJson = False,
) -> None:
    """Deploy a directory, a git repository or an image, and follow it to the end."""
    _one_source(path, git, ref, image)
    api = StreamClient.from_config()
    params = _params(port, health_path, root, dockerfile, build_arg)
    if create:
        _create_missing(api, project, service)
    if path is not None:
        query = _query(project, service, server, config, params)
        _deploy_archive(api, path, query, as_json)
        return
    body = {"project": project, "service": service, "source": _json_source(git, ref, image),
            "servers": server or None, "config_name": config, "params": params}
    watch(api, lambda: api.open_stream("POST", "/infra/deploy", json=body), as_json)


def _create_missing(api: StreamClient, project: str, service: str) -> None:
    for path, name in (("/projects", project), (f"/projects/{seg(project)}/services", service)):
        try:
            api.post(path, {"name": name})
        except ApiError as exc:
            if exc.status_code != 409:
                raise


def _deploy_archive(api: StreamClient, root: Path, query: list[tuple[str, str]],
                    as_json: bool) -> None:
    """Upload root packed as tar.gz, streamed from a temporary file, then follow."""
    with packed_archive(root, as_json) as archive:
        watch(api, lambda: api.open_stream(
            "POST", "/infra/deploy", params=query, content=archive,
            headers={"Content-Type": "application/gzip"}), as_json)


def rollback(
    project: ProjectOpt, service: ServiceOpt,
    release: Annotated[str | None, typer.Argument(
        help="Release id or id prefix; the previous release when omitted.",
        show_default=False)] = None,
    as_json: EventsJson = False,
) -> None:
    """Put an earlier release back (image and environment), and follow it to the end."""
    api = StreamClient.from_config()
    body = {"project": project, "service": service, "release": release}
    watch(api, lambda: api.open_stream("POST", "/infra/deployments/rollback", json=body),
          as_json)


def _release_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "live": "*" if row.get("live") else "", "error": row.get("error") or ""}


def linked_lines(releases: list[dict[str, Any]], width: int = 80) -> list[str]:
    """`ID linked: SERVICE (VARIABLE), ...` for each release given stateful services, wrapped
    to `width` columns; a variable the app set itself (or another service gave) says so."""
    said = [f"{row['id'][:8]} linked: {', '.join(map(_link, links))}" for row in releases
            if (links := (row.get("config") or {}).get("links"))]
    return [textwrap.fill(line, width, subsequent_indent="  ") for line in said]


def _link(link: dict[str, Any]) -> str:
    given_by = link.get("given_by")
    if given_by is None:
        return f"{link['service']} ({link['variable']})"
    by = "yours" if given_by == "you" else f"from {given_by}"
    return f"{link['service']} (not injected: {link['variable']} {by})"


def releases(
    project: ProjectOpt, service: ServiceOpt,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """A service's release history; * marks the live release. Under the table, the stateful
    services each release was given, as which variable."""
    rows = ApiClient.from_config().get(
        "/infra/deployments/history", project=project, service=service, limit=limit)
    show(rows if as_json else [_release_row(r) for r in rows], RELEASE_COLUMNS, as_json)
    if not as_json:
        for line in linked_lines(rows):
            done(line)


@services.command("redeploy")
def services_redeploy(project: ProjectOpt, as_json: JsonFlag = False) -> None:
    """Roll out every app of the project that has a release again, without downtime, so it
    gets today's variables and the project's stateful services (`dockyard restart` of each)."""
    results = ApiClient.from_config().post(f"/projects/{seg(project)}/redeploy", {})
    if as_json:
        show(results, [], as_json)
        return
    for line in redeploy_lines(project, results):
        done(line)


def redeploy_lines(project: str, results: list[dict[str, Any]]) -> list[str]:
    if not results:
        return [f"No app of {project} has a release yet: each gets the stateful services at "
                "its first deploy."]
    return [f"{r['service']}: not redeployed: {r['skipped']}" if r["skipped"] else
            f"{r['service']}: redeploying as deployment {r['deployment_id'][:8]} (follow it: "
            f"`dockyard deployments follow {r['deployment_id'][:8]}`)" for r in results]


@deployments.command("follow")
def deployments_follow(
    deployment: Annotated[str, typer.Argument(metavar="ID", help="Deployment id.")],
    as_json: EventsJson = False,
) -> None:
    """Replay a deployment's events from the start and follow it to the end."""
    api = StreamClient.from_config()
    path = f"/infra/deployments/{seg(deployment)}/events"
    watch(api, lambda: api.open_stream("GET", path), as_json, deployment)


@deploy_configs.command("list")
def deploy_configs_list(as_json: JsonFlag = False) -> None:
    """List saved deploy configs."""
    show(ApiClient.from_config().get("/infra/deploy-configs"), CONFIG_COLUMNS, as_json)


@deploy_configs.command("save")
def deploy_configs_save(
    name: str, project: ProjectOpt, service: ServiceOpt, port: PortOpt = None,
    health_path: HealthOpt = None, as_json: JsonFlag = False,
) -> None:
    """Save deploy parameters under a name, for `dockyard deploy --config NAME`."""
    body = {"name": name, "service": {"project": project, "service": service},
            "params": _params(port, health_path) or {}}
    show_one(ApiClient.from_config().post("/infra/deploy-configs", body), as_json)
