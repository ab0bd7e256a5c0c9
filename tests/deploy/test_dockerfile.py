"""Stack detection and generated Dockerfiles (exact text), and the example app they serve: as a
process here, and built and run on the real Docker Engine."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent.runtime import DockerRuntime
from dockyard.deploy.dockerfile import (
    DEFAULT_BASE_IMAGES,
    LOOKS_FOR,
    OFFLINE_BASE,
    Stack,
    base_image_for,
    detect_stack,
    offline_recipe,
    procfile_web,
    render_dockerfile,
    shell_argv,
)
from dockyard.deploy.sources import build_context
from dockyard.kernel.errors import InvalidInput
from dockyard.providers import images
from tests.live import wait_until
from tests.ports import free_port

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


def app_with(tmp_path: Path, **files: str) -> Path:
    """An app directory holding `files` (keys use '_' for '.', e.g. app_py)."""
    app = tmp_path / "app"
    app.mkdir(parents=True)
    for key, text in files.items():
        name = {"Procfile": "Procfile", "Dockerfile": "Dockerfile"}.get(key)
        name = name or key.replace("__", "-").replace("_", ".")
        (app / name).write_text(text)
    return app


# Detection.

def test_an_apps_own_dockerfile_wins(tmp_path: Path) -> None:
    app = app_with(tmp_path, Dockerfile="FROM scratch\n", requirements_txt="flask\n")
    assert detect_stack(app) == Stack("dockerfile", None, ["using the app's own Dockerfile"])


def test_python_with_requirements_runs_app_py(tmp_path: Path) -> None:
    app = app_with(tmp_path, requirements_txt="flask==3.0  # web\n", app_py="")
    assert detect_stack(app) == Stack("python", ["python3", "app.py"], [
        "no Dockerfile; detected a Python app (requirements.txt, app.py)",
        "web command: python3 app.py (inferred: app.py is the entry module)"], "requirements")


def test_python_with_gunicorn_listed_serves_through_gunicorn(tmp_path: Path) -> None:
    app = app_with(tmp_path, requirements_txt="# server\nGunicorn>=22\n", wsgi_py="")
    stack = detect_stack(app)
    assert stack.web_command == ["sh", "-c",
                                 "exec gunicorn --bind 0.0.0.0:$PORT wsgi:application"]
    app_py = app_with(tmp_path / "other", requirements_txt="gunicorn\n", app_py="")
    assert detect_stack(app_py).web_command == [
        "sh", "-c", "exec gunicorn --bind 0.0.0.0:$PORT app:app"]


def test_django_with_gunicorn_serves_the_projects_wsgi(tmp_path: Path) -> None:
    app = app_with(tmp_path, requirements_txt="Django>=5\ngunicorn\n", manage_py="")
    (app / "shop").mkdir()
    (app / "shop" / "wsgi.py").write_text("")
    assert detect_stack(app).notes == [
        "no Dockerfile; detected a Python app (requirements.txt, manage.py)",
        "web command: sh -c exec gunicorn --bind 0.0.0.0:$PORT shop.wsgi:application "
        "(inferred: Django project shop (manage.py) and gunicorn is a dependency)"]


def test_fastapi_from_pyproject_serves_through_uvicorn(tmp_path: Path) -> None:
    app = app_with(tmp_path, main_py="", pyproject_toml=(
        '[project]\nname = "x"\ndependencies = ["fastapi>=0.110", "uvicorn[standard]"]\n'))
    assert detect_stack(app) == Stack(
        "python", ["sh", "-c", "exec uvicorn main:app --host 0.0.0.0 --port $PORT"], [
            "no Dockerfile; detected a Python app (pyproject.toml, main.py)",
            "web command: sh -c exec uvicorn main:app --host 0.0.0.0 --port $PORT (inferred: "
            "uvicorn is a dependency (ASGI: FastAPI, Starlette) and main.py is the entry "
            "module)"], "pyproject", ("fastapi>=0.110", "uvicorn[standard]"))


def test_a_procfile_overrides_the_inferred_server(tmp_path: Path) -> None:
    app = app_with(tmp_path, requirements_txt="gunicorn\n", app_py="",
                   Procfile="web: gunicorn -w 4 app:app\n")
    assert detect_stack(app).web_command == ["sh", "-c", "exec gunicorn -w 4 app:app"]


def test_a_pyproject_dependency_is_never_a_pip_option(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="lists the dependency '--index-url=http://x'; a "
                                           "dependency starts with a package name"):
        detect_stack(app_with(tmp_path, main_py="", pyproject_toml=(
            '[project]\ndependencies = ["flask", "--index-url=http://x"]\n')))


def test_pyproject_must_be_toml(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"pyproject\.toml is not valid TOML"):
        detect_stack(app_with(tmp_path, pyproject_toml="[project\n", main_py=""))


def test_gunicorn_must_be_a_requirement_not_a_prefix(tmp_path: Path) -> None:
    app = app_with(tmp_path, requirements_txt="gunicorn-extras\n", main_py="")
    assert detect_stack(app).web_command == ["python3", "main.py"]


def test_python_with_empty_requirements_installs_nothing(tmp_path: Path) -> None:
    app = app_with(tmp_path, requirements_txt="# nothing yet\n\n", main_py="")
    stack = detect_stack(app)
    assert (stack.install, stack.web_command) == (None, ["python3", "main.py"])


def test_python_pyproject_with_procfile(tmp_path: Path) -> None:
    app = app_with(tmp_path, pyproject_toml="[project]\n", Procfile="web: shop serve\n")
    assert detect_stack(app) == Stack("python", ["sh", "-c", "exec shop serve"], [
        "no Dockerfile; detected a Python app (pyproject.toml)",
        "web command from Procfile: shop serve"], "pyproject")


def test_python_without_a_way_to_start_is_refused(tmp_path: Path) -> None:
    app = app_with(tmp_path, requirements_txt="flask\n", wsgi_py="")
    with pytest.raises(InvalidInput, match="found a Python app but not how to start it"):
        detect_stack(app)


def test_node_with_lock_file(tmp_path: Path) -> None:
    app = app_with(tmp_path, package_json='{"scripts": {"start": "node server.js"}}',
                   package__lock_json="{}")
    assert detect_stack(app) == Stack("node", ["npm", "start"], [
        "no Dockerfile; detected a Node app (package.json)",
        "web command: npm start (package.json's start script `node server.js`)"], "npm-ci")


def test_node_without_a_start_script_runs_server_js(tmp_path: Path) -> None:
    app = app_with(tmp_path, package_json="{}", server_js="")
    assert detect_stack(app).notes[1] == (
        "web command: npm start (no start script in package.json, so npm runs `node server.js`)")


def test_node_with_a_pnpm_lock(tmp_path: Path) -> None:
    app = app_with(tmp_path, package_json='{"scripts": {"start": "node server.js"}}',
                   pnpm__lock_yaml="lockfileVersion: '9.0'\n", package__lock_json="{}")
    assert detect_stack(app).install == "pnpm"


def test_node_with_a_yarn_lock(tmp_path: Path) -> None:
    app = app_with(tmp_path, package_json='{"scripts": {"start": "node server.js"}}',
                   yarn_lock="# yarn lockfile v1\n")
    assert detect_stack(app).install == "yarn"
    (app / "yarn.lock").write_text('__metadata:\n  version: 8\n')
    with pytest.raises(InvalidInput, match=r"yarn\.lock was written by Yarn 2 or later"):
        detect_stack(app)


def test_node_without_lock_file_or_start_script_but_server_js(tmp_path: Path) -> None:
    app = app_with(tmp_path, package_json='{"name": "x"}', server_js="")
    stack = detect_stack(app)
    assert (stack.install, stack.web_command) == ("npm-install", ["npm", "start"])


def test_node_needs_a_start_script(tmp_path: Path) -> None:
    app = app_with(tmp_path, package_json='{"scripts": {"build": "tsc"}}')
    with pytest.raises(InvalidInput, match=r"add `scripts.start` to package.json"):
        detect_stack(app)
    (app / "Procfile").write_text("web: node dist/main.js\n")
    assert detect_stack(app).web_command == ["sh", "-c", "exec node dist/main.js"]


def test_node_package_json_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"package\.json is not valid JSON"):
        detect_stack(app_with(tmp_path, package_json="{nope"))


def test_a_static_site(tmp_path: Path) -> None:
    assert detect_stack(app_with(tmp_path, index_html="<h1>hi</h1>")) == Stack(
        "static", ["sh", "-c", "exec python3 -m http.server $PORT --directory /app"],
        ["no Dockerfile; detected a static site (index.html)",
         "web command: python3 -m http.server $PORT --directory /app"])


def test_a_procfile_alone(tmp_path: Path) -> None:
    app = app_with(tmp_path, Procfile="# processes\nworker: ./work\nweb: ./server --port $PORT\n")
    assert detect_stack(app) == Stack("procfile", ["sh", "-c", "exec ./server --port $PORT"],
                                      ["no Dockerfile; found a Procfile",
                                       "web command from Procfile: ./server --port $PORT"])


def test_a_compound_procfile_line_runs_as_is_with_a_warning(tmp_path: Path) -> None:
    stack = detect_stack(app_with(tmp_path, Procfile="web: cd srv && ./server\n"))
    assert stack.web_command == ["sh", "-c", "cd srv && ./server"]
    assert stack.notes[-1].startswith("the web command is a compound shell line, so sh stays")


def test_a_procfile_without_web_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="the Procfile has no 'web:' line"):
        detect_stack(app_with(tmp_path, Procfile="worker: ./work\n"))


def test_nothing_recognisable_says_what_dockyard_looks_for(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        detect_stack(app_with(tmp_path, README_md="hi"))
    assert caught.value.message == f"could not tell how to build this app; Dockyard looks for " \
                                   f"{LOOKS_FOR}"
    assert "package.json (Node)" in LOOKS_FOR


def test_a_procfile_linking_out_of_the_app_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "host-file"
    outside.write_text("web: cat /etc/shadow\n")
    app = app_with(tmp_path, index_html="")
    (app / "Procfile").symlink_to(outside)
    assert detect_stack(app).web_command == [
        "sh", "-c", "exec python3 -m http.server $PORT --directory /app"]


@pytest.mark.parametrize(("line", "argv"), [
    ("python3 app.py", ["sh", "-c", "exec python3 app.py"]),
    ("gunicorn -b 0.0.0.0:$PORT app:app", ["sh", "-c", "exec gunicorn -b 0.0.0.0:$PORT app:app"]),
    ("exec ./server", ["sh", "-c", "exec ./server"]),
    ("./migrate; ./server", ["sh", "-c", "./migrate; ./server"]),
    ("./a && ./b", ["sh", "-c", "./a && ./b"]),
    ("./a | tee log", ["sh", "-c", "./a | tee log"]),
    ("DEBUG=1 ./server", ["sh", "-c", "DEBUG=1 ./server"]),
    ("cd app", ["sh", "-c", "cd app"]),
    ("{ ./server; }", ["sh", "-c", "{ ./server; }"]),
    ("$(which node) x", ["sh", "-c", "$(which node) x"]),
])
def test_shell_argv_execs_only_simple_commands(line: str, argv: list[str]) -> None:
    assert shell_argv(line) == argv


def test_procfile_web_line() -> None:
    assert procfile_web("release: ./migrate\nweb:  bin/serve  -p 1 \n") == "bin/serve  -p 1"
    assert procfile_web("website: x\n# web: old\n") is None


# Rendering: exact text.

HEADER = "# Generated by Dockyard for a {}; add a Dockerfile to the app to take over.\n"
PY_ENV = "HOME=/tmp PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1"


PIP_STAGE = ("COPY .dockyard-build/ /.dockyard-build/\n"
             "WORKDIR /app\n"
             "ENV PIP_CONFIG_FILE=/.dockyard-build/pip.conf PIP_NO_CACHE_DIR=1 "
             "PIP_DISABLE_PIP_VERSION_CHECK=1\n"
             "RUN python3 -m venv /venv\n")


def source_stage(base: str) -> str:
    return f"FROM {base} AS source\nCOPY . /app\nRUN rm -rf /app/.dockyard-build\n"


def test_python_requirements_dockerfile() -> None:
    """Dependencies in their own stage, before the code: a code change reuses that layer; the
    builder's pip config stays in that stage, and the final one copies only the venv."""
    stack = Stack("python", ["python3", "app.py"], [], "requirements")
    assert render_dockerfile(stack, "python:3.12-slim", 8000) == HEADER.format("Python app") + (
        "FROM python:3.12-slim AS dependencies\n"
        f"{PIP_STAGE}"
        "COPY requirements.txt ./\n"
        "RUN /venv/bin/pip install -r requirements.txt\n"
        f"{source_stage('python:3.12-slim')}"
        "FROM python:3.12-slim\n"
        "WORKDIR /app\n"
        f"ENV PORT=8000 PATH=/venv/bin:$PATH {PY_ENV}\n"
        "COPY --from=source /app /app\n"
        "COPY --from=dependencies /venv /venv\n"
        "USER 65534:65534\n"
        "EXPOSE 8000\n"
        'CMD ["python3", "app.py"]\n'
    )


def test_python_pyproject_dockerfile_installs_its_dependencies_as_argv() -> None:
    stack = Stack("python", ["sh", "-c", "exec shop serve"], [], "pyproject",
                  ("fastapi>=0.110", "uvicorn[standard]; python_version > '3'"))
    assert render_dockerfile(stack, "dockyard/python:bookworm", 5000) == HEADER.format(
        "Python app") + (
        "FROM dockyard/python:bookworm AS dependencies\n"
        f"{PIP_STAGE}"
        'RUN ["/venv/bin/pip", "install", "fastapi>=0.110", '
        '"uvicorn[standard]; python_version > \'3\'"]\n'
        f"{source_stage('dockyard/python:bookworm')}"
        "FROM dockyard/python:bookworm\n"
        "WORKDIR /app\n"
        f"ENV PORT=5000 PATH=/venv/bin:$PATH {PY_ENV}\n"
        "COPY --from=source /app /app\n"
        "COPY --from=dependencies /venv /venv\n"
        "USER 65534:65534\n"
        "EXPOSE 5000\n"
        'CMD ["sh", "-c", "exec shop serve"]\n'
    )


def test_a_dependency_line_cannot_add_a_dockerfile_instruction() -> None:
    stack = Stack("python", ["python3", "main.py"], [], "pyproject", ("x\nRUN curl evil",))
    text = render_dockerfile(stack, "b", 80)
    assert "\nRUN curl" not in text
    assert 'RUN ["/venv/bin/pip", "install", "x\\nRUN curl evil"]' in text


@pytest.mark.parametrize(("install", "copy", "run"), [
    ("npm-ci", "package*.json", "npm ci --omit=dev"),
    ("npm-install", "package*.json", "npm install --omit=dev"),
    ("pnpm", "package.json pnpm-lock.yaml",
     "npx --yes pnpm@9.15.0 install --frozen-lockfile --prod"),
    ("yarn", "package.json yarn.lock",
     "npx --yes yarn@1.22.22 install --frozen-lockfile --production --non-interactive")])
def test_node_dockerfile(install: str, copy: str, run: str) -> None:
    stack = Stack("node", ["npm", "start"], [], install)  # type: ignore[arg-type]
    assert render_dockerfile(stack, "node:20-slim", 3000) == HEADER.format("Node app") + (
        "FROM node:20-slim AS dependencies\n"
        "COPY .dockyard-build/ /.dockyard-build/\n"
        "WORKDIR /app\n"
        "ENV NPM_CONFIG_USERCONFIG=/.dockyard-build/npmrc NODE_ENV=production\n"
        f"COPY {copy} ./\n"
        f"RUN {run}\n"
        f"{source_stage('node:20-slim')}"
        "FROM node:20-slim\n"
        "WORKDIR /app\n"
        "ENV PORT=3000 HOME=/tmp NODE_ENV=production\n"
        "COPY --from=source /app /app\n"
        "COPY --from=dependencies /app/node_modules /app/node_modules\n"
        "USER 65534:65534\n"
        "EXPOSE 3000\n"
        'CMD ["npm", "start"]\n'
    )


def test_offline_recipes_carry_what_the_stack_installs_with() -> None:
    assert offline_recipe(Stack("python", ["x"], [], "requirements")) == "python"
    assert offline_recipe(Stack("python", ["x"], [], "pyproject")) == "python"
    assert offline_recipe(Stack("node", ["x"], [], "npm-ci")) == "node"
    assert offline_recipe(Stack("python", ["x"], [])) == "base"
    assert offline_recipe(Stack("static", ["x"], [])) == "base"
    assert {name for name in images.RECIPES} >= {"base", "python", "node"}
    assert images.RECIPES["python"].packages == (
        "python3", "python3-pip", "python3-venv", "ca-certificates")
    node = images.RECIPES["node"]
    assert (node.packages, node.apt_installed) == (("nodejs", "ca-certificates"), ("npm",))
    apt = ["chroot", "/w/r", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q"]
    assert images.apt_install_argvs(node, Path("/w/r")) == [
        [*apt, "update"], [*apt, "install", "-y", "--no-install-recommends", "npm"]]
    assert images.apt_install_argvs(images.RECIPES["python"], Path("/w/r")) == []


def test_static_and_procfile_dockerfiles() -> None:
    static = Stack("static", shell_argv("python3 -m http.server $PORT --directory /app"), [])
    assert render_dockerfile(static, "python:3.12-slim", 8080) == HEADER.format(
        "static site") + (
        "FROM python:3.12-slim\n"
        "WORKDIR /app\n"
        f"ENV PORT=8080 {PY_ENV}\n"
        "COPY . .\n"
        "USER 65534:65534\n"
        "EXPOSE 8080\n"
        'CMD ["sh", "-c", "exec python3 -m http.server $PORT --directory /app"]\n'
    )
    procfile = Stack("procfile", ["sh", "-c", 'exec ./srv --name "a b"'], [])
    assert render_dockerfile(procfile, "python:3.12-slim", 8000).splitlines()[0] == \
        HEADER.format("Procfile app").strip()
    assert render_dockerfile(procfile, "python:3.12-slim", 8000).splitlines()[-1] == \
        'CMD ["sh", "-c", "exec ./srv --name \\"a b\\""]'


def test_an_apps_own_dockerfile_is_never_rendered() -> None:
    with pytest.raises(ValueError, match="needs no generated one"):
        render_dockerfile(Stack("dockerfile", None, []), "x", 80)


def test_base_images() -> None:
    python = Stack("python", ["python3", "app.py"], [])
    assert base_image_for(python, None) == "python:3.12-slim"
    assert base_image_for(Stack("node", ["npm", "start"], []), None) == "node:20-slim"
    assert base_image_for(python, "dockyard/base:bookworm") == "dockyard/base:bookworm"
    assert DEFAULT_BASE_IMAGES["static"] == DEFAULT_BASE_IMAGES["procfile"] == "python:3.12-slim"
    assert OFFLINE_BASE == "dockyard/base"
    with pytest.raises(ValueError, match="chooses its own base image"):
        base_image_for(Stack("dockerfile", None, []), None)


HELLO_DOCKERFILE = HEADER.format("Python app") + (
    "FROM dockyard/base:bookworm\n"
    "WORKDIR /app\n"
    f"ENV PORT=8000 {PY_ENV}\n"
    "COPY . .\n"
    "USER 65534:65534\n"
    "EXPOSE 8000\n"
    'CMD ["sh", "-c", "exec python3 app.py"]\n'
)


def test_the_hello_example_gets_a_python_dockerfile_needing_no_pip() -> None:
    stack = detect_stack(HELLO)
    assert stack == Stack("python", ["sh", "-c", "exec python3 app.py"], [
        "no Dockerfile; detected a Python app (app.py)",
        "web command from Procfile: python3 app.py"])
    assert render_dockerfile(stack, "dockyard/base:bookworm", 8000) == HELLO_DOCKERFILE


# The example app as a process: its pages, and a graceful stop with a request in flight.

def _get(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def _answers(port: int) -> bool:
    try:
        return _get(port, "/healthz").text == "ok"
    except httpx.HTTPError:
        return False


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # queued as the listener closed: try again
        return False
    return False


@pytest.fixture
def hello() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "GREETING": "Hi <there>",
           "DOCKYARD_RELEASE": "deploy_1a2b3c4d"}
    app = subprocess.Popen([sys.executable, str(HELLO / "app.py")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), f"the example app answers on port {port}")
        yield app, port
    finally:
        app.kill()
        app.wait()


def test_the_example_serves_its_pages(hello: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = hello
    home = _get(port, "/")
    assert home.status_code == 200
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Hi &lt;there&gt;</h1>" in home.text
    assert "<p>Release deploy_1a2b3c4d</p>" in home.text
    assert (_get(port, "/healthz").status_code, _get(port, "/healthz").text) == (200, "ok")
    api = _get(port, "/api")
    assert api.headers["content-type"] == "application/json"
    assert api.json() == {"greeting": "Hi <there>", "release": "deploy_1a2b3c4d",
                          "hostname": socket.gethostname()}
    assert _get(port, "/nope").status_code == 404


def test_the_example_drains_on_sigterm(hello: tuple[subprocess.Popen[bytes], int]) -> None:
    app, port = hello
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"GET /api HTTP/1.0\r\n")  # a request still arriving
    # Connections are accepted in order: once this one is answered, the slow one was taken.
    assert _answers(port)
    app.send_signal(signal.SIGTERM)
    wait_until(lambda: _refuses(port), "the example stops accepting connections")
    assert app.poll() is None
    slow.sendall(b"Host: example\r\n\r\n")
    response = b"".join(iter(lambda: slow.recv(65536), b""))
    slow.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert json.loads(body)["release"] == "deploy_1a2b3c4d"
    assert app.wait(timeout=10) == 0
    assert app.stdout is not None
    assert app.stdout.read().decode().splitlines() == [
        f"listening on port {port}", "stopped"]


def test_the_example_defaults(tmp_path: Path) -> None:
    """No GREETING, no release: the defaults show; PORT is honoured."""
    port = free_port()
    app = subprocess.Popen([sys.executable, str(HELLO / "app.py")],
                           env={"PATH": "/usr/bin:/bin", "PORT": str(port)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), "the example app answers")
        assert _get(port, "/api").json()["greeting"] == "Hello from Dockyard"
        assert _get(port, "/api").json()["release"] is None
        assert "Release" not in _get(port, "/").text
        app.send_signal(signal.SIGINT)
        assert app.wait(timeout=10) == 0
    finally:
        app.kill()
        app.wait()


# End to end: the generated Dockerfile builds and serves on the real Docker Engine.

def _docker() -> docker.APIClient:
    client = docker.APIClient(base_url="unix:///var/run/docker.sock", timeout=300)
    try:
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker is not running ({exc}); start dockerd (apt-get install docker.io)")
    return client


def _offline_base() -> str:
    try:
        tarball = images.bootstrap_tarball(images.RECIPES["base"], images.ImageSettings())
    except FileNotFoundError as exc:
        pytest.fail(f"no cached base image and no debootstrap ({exc}): apt-get install "
                    "debootstrap, or run `dockyard images bootstrap --image base`")
    return images.import_tarball(DockerRuntime("unix:///var/run/docker.sock"),
                                 tarball).reference


def _build(client: docker.APIClient, context: Path, dockerfile: str, tag: str) -> None:
    with context.open("rb") as fileobj:
        lines = list(client.build(fileobj=fileobj, custom_context=True, tag=tag,
                                  dockerfile=dockerfile, rm=True, forcerm=True, decode=True))
    errors = [line["error"] for line in lines if "error" in line]
    assert errors == [], "".join(str(line.get("stream", "")) for line in lines)


@pytest.mark.slow
def test_the_hello_example_builds_and_runs_on_docker(tmp_path: Path) -> None:
    client = _docker()
    base = _offline_base()
    stack = detect_stack(HELLO)
    name = build_context(HELLO, tmp_path / "context.tar", render_dockerfile(stack, base, 8000))
    tag = f"dockyard-test/hello:{uuid.uuid4().hex[:8]}"
    container = None
    try:
        _build(client, tmp_path / "context.tar", name, tag)
        port = free_port()
        container = client.create_container(
            tag, environment={"GREETING": "Hello from a container"}, ports=[8000],
            host_config=client.create_host_config(port_bindings={8000: ("127.0.0.1", port)}))
        client.start(container)
        wait_until(lambda: _answers(port), "the container answers /healthz", timeout=60)
        assert "<h1>Hello from a container</h1>" in _get(port, "/").text
        assert client.inspect_container(container)["Config"]["User"] == "65534:65534"
        client.stop(container, timeout=30)
        assert client.wait(container)["StatusCode"] == 0  # SIGTERM reached python: a clean exit
    finally:
        if container is not None:
            client.remove_container(container, force=True)
        if any(tag in (image.get("RepoTags") or []) for image in client.images()):
            client.remove_image(tag, force=True)
        client.close()
