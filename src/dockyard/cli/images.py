"""`dockyard images`: offline base images built from this machine's apt mirror."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.agent.runtime import DockerRuntime
from dockyard.cli.output import done
from dockyard.providers import images, local

app = typer.Typer(help="Base images built without any container registry.", no_args_is_help=True)


@app.callback()
def _images() -> None:
    """Offline base images (a group, so `bootstrap` stays a subcommand)."""


@app.command()
def bootstrap(
    image: Annotated[list[str] | None, typer.Option(
        "--image", help=f"Which images ({', '.join(images.RECIPES)}); all when omitted.")] = None,
    load: Annotated[bool, typer.Option(help="Import into this machine's Docker.")] = True,
) -> None:
    """Build Debian root file systems with debootstrap, cache them, import them into Docker."""
    settings = images.ImageSettings()
    names = image or list(images.RECIPES)
    unknown = sorted(set(names) - set(images.RECIPES))
    if unknown:
        raise RuntimeError(f"unknown image {', '.join(unknown)}; choose from "
                           f"{', '.join(images.RECIPES)}")
    runtime = DockerRuntime(local.ensure_local_docker(settings.cache_dir)) if load else None
    for name in names:
        recipe = images.RECIPES[name]
        tarball = images.bootstrap_tarball(recipe, settings)
        done(f"{name}: {tarball.path}")
        if runtime is not None:
            ref = images.import_tarball(runtime, tarball)
            done(f"{name}: imported as {ref.reference}")
