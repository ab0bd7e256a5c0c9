"""A Dockerfile for code that has none: detect the stack, then render the file as exact text.

Generated images listen on $PORT, run as nobody, and start the web process as process 1 so
that `docker stop` (SIGTERM) reaches it and it can drain.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dockyard.deploy import procfile
from dockyard.deploy.procfile import COMPOUND as _COMPOUND
from dockyard.deploy.procfile import shell_argv
from dockyard.deploy.pylocks import locked_pins
from dockyard.deploy.runtimes import Declared, declared_node, declared_python, public_image
from dockyard.kernel.errors import InvalidInput
from dockyard.models.deployment_plan import Processes

StackKind = Literal["dockerfile", "python", "node", "static", "procfile"]
Install = Literal["requirements", "pyproject", "npm-ci", "npm-install", "pnpm", "yarn"]


@dataclass(frozen=True)
class Stack:
    kind: StackKind
    web_command: list[str] | None
    notes: list[str]  # human lines for the deploy log
    install: Install | None = None  # how dependencies are installed, if at all
    dependencies: tuple[str, ...] = ()  # pyproject's [project].dependencies, installed by name
    runtime: Declared | None = None  # the version the app asks for, if it does


DEFAULT_BASE_IMAGES: dict[str, str] = {
    "python": "python:3.12-slim", "node": "node:20-slim",
    "static": "python:3.12-slim", "procfile": "python:3.12-slim",
}
OFFLINE_BASE = "dockyard/base"  # debootstrapped, tagged by Debian suite; python3, no pip
BUILD_CONFIG = ".dockyard-build"  # the builder's pip/npm config and CA, added by the agent
NOBODY = "65534:65534"
PNPM_VERSION = "9.15.0"  # run through npx: the offline base ships neither pnpm nor Yarn
YARN_VERSION = "1.22.22"
PYTHON_MARKERS = ("requirements.txt", "pyproject.toml", "app.py", "main.py", "wsgi.py")
LOOKS_FOR = ("a Dockerfile; requirements.txt, pyproject.toml, app.py, main.py or wsgi.py "
             "(Python); package.json (Node); index.html (static site); or a Procfile with a "
             "'web:' line")
_MAX_READ = 1024 * 1024


def base_image_for(stack: Stack, configured: str | None) -> str:
    """The image to build `stack` on: the configured one, else one of the version the app
    declares, else the stack's default."""
    if stack.kind == "dockerfile":
        raise ValueError("an app with its own Dockerfile chooses its own base image")
    if configured or stack.runtime is None:
        return configured or DEFAULT_BASE_IMAGES[stack.kind]
    return public_image(stack.runtime)


def _read(app_dir: Path, name: str) -> str | None:
    """A top-level file's text; None if absent or a link leading out of the app."""
    path = app_dir / name
    if not path.is_file() or not path.resolve().is_relative_to(app_dir.resolve()):
        return None
    with path.open("rb") as file:
        return file.read(_MAX_READ).decode(errors="replace")


def app_processes(app_dir: Path) -> Processes:
    """The process types and release command of the app's Procfile, if it has one."""
    return procfile.processes(_read(app_dir, "Procfile"))


def procfile_web(text: str) -> str | None:
    """The command of the Procfile's `web:` process."""
    return procfile.parse(text).get("web")


def _web_notes(web: str) -> list[str]:
    notes = [f"web command from Procfile: {web}"]
    if _COMPOUND.search(web) and not web.lstrip().startswith("exec "):
        notes.append("the web command is a compound shell line, so sh stays process 1 and "
                     "does not pass SIGTERM on; start the server with `exec` to shut down "
                     "gracefully")
    return notes


def detect_stack(app_dir: Path, named_dockerfile: str | None = None) -> Stack:
    """How to build the app in `app_dir`; InvalidInput says what Dockyard looks for."""
    if named_dockerfile is not None:
        if _read(app_dir, named_dockerfile) is None:
            raise InvalidInput(f"the Dockerfile {named_dockerfile!r} is not a file in the app")
        return Stack("dockerfile", None, [f"using the app's Dockerfile {named_dockerfile}"])
    if (app_dir / "Dockerfile").is_file():
        return Stack("dockerfile", None, ["using the app's own Dockerfile"])
    procfile = _read(app_dir, "Procfile")
    web = procfile_web(procfile) if procfile is not None else None
    for detect in (_python, _node, _static):
        stack = detect(app_dir, web)
        if stack is not None:
            return stack
    if web is not None:
        return Stack("procfile", shell_argv(web), ["no Dockerfile; found a Procfile",
                                                   *_web_notes(web)])
    if procfile is not None:
        raise InvalidInput("the Procfile has no 'web:' line; add one like 'web: ./server'")
    raise InvalidInput(f"could not tell how to build this app; Dockyard looks for {LOOKS_FOR}")


def _requirements(app_dir: Path) -> list[str]:
    """The meaningful lines of requirements.txt (no blanks, no comments)."""
    text = _read(app_dir, "requirements.txt") or ""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _pyproject_dependencies(app_dir: Path) -> tuple[str, ...]:
    """`[project].dependencies` of pyproject.toml; InvalidInput if it is not valid TOML."""
    try:
        project = tomllib.loads(_read(app_dir, "pyproject.toml") or "").get("project", {})
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"pyproject.toml is not valid TOML: {error}") from error
    found = project.get("dependencies", []) if isinstance(project, dict) else []
    listed = tuple(item for item in found if isinstance(item, str)) if isinstance(
        found, list) else ()
    for item in listed:
        if not re.match(r"[A-Za-z0-9]", item):  # pip would read it as an option
            raise InvalidInput(f"pyproject.toml lists the dependency {item!r}; a dependency "
                               "starts with a package name")
    return listed


def _depends_on(requirements: list[str] | tuple[str, ...], name: str) -> bool:
    return any(re.match(rf"{name}(?![\w.-])", line, re.I) for line in requirements)


def _django_project(app_dir: Path) -> str | None:
    """The package holding wsgi.py beside manage.py, as Django's startproject lays it out."""
    if not (app_dir / "manage.py").is_file():
        return None
    found = sorted(path.parent.name for path in app_dir.glob("*/wsgi.py"))
    return found[0] if found else None


def _inferred_server(app_dir: Path, present: list[str], requirements: list[str]
                     ) -> tuple[list[str], str] | None:
    """A start command and why, the way Nixpacks and Railpack infer one."""
    module = next((name[:-3] for name in present if name.endswith(".py")), None)
    django = _django_project(app_dir)
    if django and _depends_on(requirements, "gunicorn"):
        return (shell_argv(f"gunicorn --bind 0.0.0.0:$PORT {django}.wsgi:application"),
                f"Django project {django} (manage.py) and gunicorn is a dependency")
    if module and _depends_on(requirements, "gunicorn"):
        target = f"{module}:{'application' if module == 'wsgi' else 'app'}"
        return (shell_argv(f"gunicorn --bind 0.0.0.0:$PORT {target}"),
                f"gunicorn is a dependency and {module}.py is the entry module")
    if module and _depends_on(requirements, "uvicorn"):
        return (shell_argv(f"uvicorn {module}:app --host 0.0.0.0 --port $PORT"),
                f"uvicorn is a dependency (ASGI: FastAPI, Starlette) and {module}.py is the "
                "entry module")
    if module in ("app", "main"):
        return ["python3", f"{module}.py"], f"{module}.py is the entry module"
    return None


def _python_install(app_dir: Path, present: list[str], requirements: list[str]
                    ) -> tuple[Install | None, tuple[str, ...], list[str]]:
    """How dependencies are installed, the pins or names pip gets, and a note on the lock."""
    if requirements:
        return "requirements", (), []
    if "pyproject.toml" not in present:
        return None, (), []
    locked = locked_pins(app_dir)
    if locked is None:
        return "pyproject", _pyproject_dependencies(app_dir), []
    lock, pins = locked
    return "pyproject", pins, [f"dependencies pinned by {lock} ({len(pins)} packages)"]


def _python_command(app_dir: Path, web: str | None, present: list[str],
                    dependencies: list[str]) -> tuple[list[str], list[str]]:
    """The web command and the notes saying where it came from."""
    if web:
        return shell_argv(web), _web_notes(web)
    inferred = _inferred_server(app_dir, present, dependencies)
    if inferred is None:
        raise InvalidInput("found a Python app but not how to start it: add a Procfile with a "
                           "'web:' line, or an app.py or main.py that listens on $PORT")
    command, why = inferred
    return command, [f"web command: {' '.join(command)} (inferred: {why})"]


def _python(app_dir: Path, web: str | None) -> Stack | None:
    present = [name for name in (*PYTHON_MARKERS, "manage.py") if (app_dir / name).is_file()]
    if not present:
        return None
    requirements = _requirements(app_dir)
    install, dependencies, lock_notes = _python_install(app_dir, present, requirements)
    command, command_notes = _python_command(app_dir, web, present,
                                             requirements or list(dependencies))
    notes = [f"no Dockerfile; detected a Python app ({', '.join(present)})", *command_notes,
             *lock_notes]
    return Stack("python", command, notes, install, dependencies, declared_python(app_dir))


def _start_script(app_dir: Path) -> str | None:
    """package.json's `scripts.start`, if it has one."""
    text = _read(app_dir, "package.json") or ""
    try:
        package = json.loads(text)
    except ValueError as error:
        raise InvalidInput(f"package.json is not valid JSON: {error}") from error
    scripts = package.get("scripts") if isinstance(package, dict) else None
    start = scripts.get("start") if isinstance(scripts, dict) else None
    return start.strip() if isinstance(start, str) and start.strip() else None


def _has_start(app_dir: Path) -> bool:
    return _start_script(app_dir) is not None or (app_dir / "server.js").is_file()


def _node_install(app_dir: Path) -> Install:
    """By the lock file: pnpm, Yarn 1, npm ci; npm install without one."""
    if (app_dir / "pnpm-lock.yaml").is_file():
        return "pnpm"
    yarn_lock = _read(app_dir, "yarn.lock")
    if yarn_lock is not None and "__metadata:" in yarn_lock:
        raise InvalidInput("yarn.lock was written by Yarn 2 or later, which Dockyard does not "
                           "run yet; use Yarn 1, npm (package-lock.json) or pnpm")
    if yarn_lock is not None:
        return "yarn"
    return "npm-ci" if (app_dir / "package-lock.json").is_file() else "npm-install"


def _npm_start_note(app_dir: Path) -> str:
    """Why the web command is `npm start`: the start script, or npm's own default."""
    script = _start_script(app_dir)
    why = (f"package.json's start script `{script}`" if script else
           "no start script in package.json, so npm runs `node server.js`")
    return f"web command: npm start ({why})"


def _node(app_dir: Path, web: str | None) -> Stack | None:
    if not (app_dir / "package.json").is_file():
        return None
    if not _has_start(app_dir) and web is None:
        raise InvalidInput("found a Node app without a start script: add `scripts.start` to "
                           "package.json (for example \"node server.js\") or a Procfile 'web:' "
                           "line")
    install = _node_install(app_dir)
    notes = ["no Dockerfile; detected a Node app (package.json)",
             *(_web_notes(web) if web else [_npm_start_note(app_dir)])]
    return Stack("node", shell_argv(web) if web else ["npm", "start"], notes, install,
                 runtime=declared_node(app_dir))


STATIC_SERVER = "python3 -m http.server $PORT --directory /app"


def _static(app_dir: Path, web: str | None) -> Stack | None:
    if not (app_dir / "index.html").is_file():
        return None
    notes = ["no Dockerfile; detected a static site (index.html)",
             *(_web_notes(web) if web else [f"web command: {STATIC_SERVER}"])]
    return Stack("static", shell_argv(web or STATIC_SERVER), notes)


_LABELS = {"python": "Python app", "node": "Node app", "static": "static site",
           "procfile": "Procfile app"}
_ENV = {"node": "HOME=/tmp NODE_ENV=production"}
_PYTHON_ENV = "HOME=/tmp PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1"
_PIP_ENV = (f"ENV PIP_CONFIG_FILE=/{BUILD_CONFIG}/pip.conf PIP_NO_CACHE_DIR=1 "
            "PIP_DISABLE_PIP_VERSION_CHECK=1")
_NPM_ENV = f"ENV NPM_CONFIG_USERCONFIG=/{BUILD_CONFIG}/npmrc NODE_ENV=production"
_VENV = "RUN python3 -m venv /venv"
_INSTALL: dict[Install, list[str]] = {
    "requirements": [_PIP_ENV, _VENV, "COPY requirements.txt ./",
                     "RUN /venv/bin/pip install -r requirements.txt"],
    "pyproject": [_PIP_ENV, _VENV],
    "npm-ci": [_NPM_ENV, "COPY package*.json ./", "RUN npm ci --omit=dev"],
    "npm-install": [_NPM_ENV, "COPY package*.json ./", "RUN npm install --omit=dev"],
    "pnpm": [_NPM_ENV, "COPY package.json pnpm-lock.yaml ./",
             f"RUN npx --yes pnpm@{PNPM_VERSION} install --frozen-lockfile --prod"],
    "yarn": [_NPM_ENV, "COPY package.json yarn.lock ./",
             f"RUN npx --yes yarn@{YARN_VERSION} install --frozen-lockfile --production "
             "--non-interactive"],
}
_INSTALLED = {"python": "COPY --from=dependencies /venv /venv",
              "node": "COPY --from=dependencies /app/node_modules /app/node_modules"}


def _header(stack: Stack) -> str:
    return (f"# Generated by Dockyard for a {_LABELS[stack.kind]}; "
            "add a Dockerfile to the app to take over.")


def _dependency_stages(stack: Stack, install: Install, base_image: str) -> list[str]:
    """A stage that installs the dependencies with the builder's package config (which stays
    in that stage), and one holding the app without that config."""
    pyproject = [f"RUN {json.dumps(['/venv/bin/pip', 'install', *stack.dependencies])}"
                 ] if install == "pyproject" and stack.dependencies else []
    return [f"FROM {base_image} AS dependencies", f"COPY {BUILD_CONFIG}/ /{BUILD_CONFIG}/",
            "WORKDIR /app", *_INSTALL[install], *pyproject,
            f"FROM {base_image} AS source", "COPY . /app", f"RUN rm -rf /app/{BUILD_CONFIG}"]


def _final_stage(stack: Stack, base_image: str, port: int) -> list[str]:
    env = _ENV.get(stack.kind, _PYTHON_ENV)
    if stack.install is None:
        return [f"FROM {base_image}", "WORKDIR /app", f"ENV PORT={port} {env}", "COPY . ."]
    path = "PATH=/venv/bin:$PATH " if stack.kind == "python" else ""
    return [f"FROM {base_image}", "WORKDIR /app", f"ENV PORT={port} {path}{env}",
            "COPY --from=source /app /app", _INSTALLED[stack.kind]]


def render_dockerfile(stack: Stack, base_image: str, port: int) -> str:
    """The Dockerfile text for `stack` on `base_image`, serving on `port` (also $PORT)."""
    if stack.kind == "dockerfile" or stack.web_command is None:
        raise ValueError("an app with its own Dockerfile needs no generated one")
    stages = [] if stack.install is None else _dependency_stages(stack, stack.install,
                                                                 base_image)
    lines = [_header(stack), *stages, *_final_stage(stack, base_image, port),
             f"USER {NOBODY}", f"EXPOSE {port}", f"CMD {json.dumps(stack.web_command)}"]
    return "\n".join(lines) + "\n"


OFFLINE_RECIPES: dict[Install | None, str] = {
    "requirements": "python", "pyproject": "python", "npm-ci": "node", "npm-install": "node",
    "pnpm": "node", "yarn": "node"}


def offline_recipe(stack: Stack) -> str:
    """Which offline base (providers.images recipe) carries what `stack` needs to build."""
    return OFFLINE_RECIPES.get(stack.install, "base")
