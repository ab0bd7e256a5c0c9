"""A real git server for tests: `git http-backend` (git's own smart HTTP, protocol v2 included)
behind a small threaded HTTP server on a loopback port, optionally behind Basic auth (then it
is a private repository). Repositories are bare repositories under `root`; `commit` makes
one with a file and returns the new commit's sha."""

from __future__ import annotations

import base64
import os
import pwd
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from dockyard.agent import process
from tests.ports import free_port as _free_port

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def _cgi_env(handler: BaseHTTPRequestHandler, root: Path, user: str) -> dict[str, str]:
    parts = urlsplit(handler.path)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(root),
           "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": handler.command,
           "PATH_INFO": parts.path, "QUERY_STRING": parts.query, "REMOTE_USER": user,
           "REMOTE_ADDR": "127.0.0.1",
           "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
           "GIT_PROTOCOL": handler.headers.get("Git-Protocol", "")}
    if handler.headers.get("Content-Encoding"):
        env["HTTP_CONTENT_ENCODING"] = handler.headers["Content-Encoding"]
    return env


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        user = self._user()
        if user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        body = self._body()
        self.server.requests.append(self.path)
        self.server.protocols.append(self.headers.get("Git-Protocol", ""))
        env = {**_cgi_env(self, self.server.root, user), "CONTENT_LENGTH": str(len(body))}
        done = subprocess.run(["git", "http-backend"], input=body,
                              capture_output=True, env=env, check=False, timeout=60)
        self._relay(done.stdout)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _user(self) -> str | None:
        """The authenticated user ("" when the server is public); None: refused."""
        if self.server.credentials is None:
            return ""
        given = self.headers.get("Authorization", "")
        for user, password in self.server.credentials:
            expected = base64.b64encode(f"{user}:{password}".encode()).decode()
            if secrets.compare_digest(given, f"Basic {expected}"):
                return user
        return None

    def _relay(self, output: bytes) -> None:
        head, _, body = output.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().split("\r\n") if ":" in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, credentials: list[tuple[str, str]] | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.credentials = root, credentials
        self.requests: list[str] = []
        self.protocols: list[str] = []  # each request's Git-Protocol header


class GitServer:
    """Serves the bare repositories under `root` at `url_of(name)`. With `credentials`
    ((user, password) pairs), every request needs one of them."""

    def __init__(self, root: Path, credentials: list[tuple[str, str]] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._server = _Server(root, credentials)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def requests(self) -> list[str]:
        return self._server.requests

    @property
    def protocols(self) -> list[str]:
        return self._server.protocols

    def start(self) -> GitServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url_of(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}.git"

    def create(self, name: str) -> Path:
        bare = self.root / f"{name}.git"
        process.check(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)])
        return bare

    def commit(self, name: str, files: dict[str, str], branch: str = "main") -> str:
        """A commit of `files` on top of `branch` (created if new), pushed into the bare
        repository; its sha."""
        with tempfile.TemporaryDirectory() as work:
            return commit_files(self.root / f"{name}.git", Path(work), files, branch)


def _git(work: Path, *args: str) -> str:
    return process.check(["git", "-C", str(work), *args],
                         env={**os.environ, **GIT_ENV}).output.strip()


def commit_files(bare: Path, work: Path, files: dict[str, str], branch: str) -> str:
    _git(work, "init", "--quiet", "-b", branch)
    if _git(work, "ls-remote", str(bare), f"refs/heads/{branch}"):
        _git(work, "fetch", "--quiet", str(bare), branch)
        _git(work, "reset", "--quiet", "--hard", "FETCH_HEAD")
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "--allow-empty", "-m", f"change {sorted(files)}")
    _git(work, "push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}")
    return _git(work, "rev-parse", "HEAD")


class SshGitServer:
    """The same bare repositories over ssh: a real `sshd` on a loopback port that lets in
    one key (a deploy key's), for this user. `url_of(name)` is an ssh:// URL."""

    def __init__(self, root: Path, state: Path) -> None:
        self.root, self.state = root, state
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def client_key(self) -> str:
        return (self.state / "deploy_key").read_text()

    def start(self) -> SshGitServer:
        self.state.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "deploy_key"):
            process.check(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                           "-f", str(self.state / name)])
        (self.state / "authorized_keys").write_text((self.state / "deploy_key.pub").read_text())
        config = self.state / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1",
            f"HostKey {self.state / 'host_key'}",
            f"AuthorizedKeysFile {self.state / 'authorized_keys'}", "StrictModes no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            f"PidFile {self.state / 'sshd.pid'}", ""]))
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self.process = process.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                     log_file=self.state / "sshd.log")
        _await_port(self.port, self.state / "sshd.log")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def url_of(self, name: str) -> str:
        user = pwd.getpwuid(os.getuid()).pw_name
        return f"ssh://{user}@127.0.0.1:{self.port}{self.root}/{name}.git"


def _await_port(port: int, log: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"sshd did not listen on {port}: {log.read_text()[-2000:]}")
