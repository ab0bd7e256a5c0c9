"""`dockyard-agent`: read the agent's settings from the environment and serve.

`dockyard-agent fingerprint` prints the SHA-256 fingerprint of the agent's TLS certificate
(made if it does not exist yet), to compare with what `dockyard servers list` shows."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

from dockyard.agent.serve import Listen

log = logging.getLogger("dockyard.agent")


def _listen(settings: Any) -> Listen:
    """Where the agent listens, with its own certificate unless TLS is off."""
    from dockyard.agent import tls

    where = Listen(settings.host, settings.port, grace_seconds=10)
    if not settings.tls:
        log.warning("TLS is off (DOCKYARD_AGENT_TLS=false): agent traffic crosses the network "
                    "in clear; use this on a private network only")
        return where
    files = settings.certificate_files
    if not files.certificate.exists():
        _make_certificate_apart()
    log.info("agent certificate fingerprint (SHA-256): %s",
             tls.fingerprint_of_file(files.certificate))
    return replace(where, certificate=str(files.certificate), private_key=str(files.private_key))


def _make_certificate_apart() -> None:
    """`dockyard-agent fingerprint` in a child process (the same environment, so the same
    files): the serving agent never holds cryptography (11 MB with OpenSSL's heap)."""
    made = subprocess.run([sys.executable, "-m", "dockyard.agent.main", "fingerprint"],
                          check=False, capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"the agent's certificate could not be made: {made.stderr.strip()}")


def _without_httpx_cli() -> None:
    """httpx imports its command line (click, rich, pygments: 4 MB) unless that import fails
    (it then stands in a stub); the agent never runs it. Before anything imports httpx."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def serve() -> None:
    _without_httpx_cli()
    from dockyard.agent.app import create_app
    from dockyard.agent.serve import Server
    from dockyard.agent.settings import AgentSettings
    from dockyard.kernel.logging import configure_logging

    settings = AgentSettings.from_environment(os.environ)
    configure_logging(settings.log_level, settings.log_json)
    app = create_app(settings)
    server = Server(app, _listen(settings))
    app.state.upgrader.restart.attach(server.request_exit)
    server.run()
    if app.state.upgrader.restart.requested:  # an upgrade switched `current`: become it
        from dockyard.agent.upgrade import reexec

        reexec()


def fingerprint() -> None:
    from dockyard.agent import tls
    from dockyard.agent.settings import AgentSettings

    print(tls.ensure_certificate(AgentSettings.from_environment(os.environ).certificate_files))


def run() -> None:
    """`--version` prints the version, `fingerprint` the certificate's fingerprint; otherwise
    serve, failing with one line, not a trace."""
    arguments = sys.argv[1:]
    if "--version" in arguments:
        from dockyard.agent.release import code_version

        print(f"dockyard-agent {code_version()}")
        return
    try:
        fingerprint() if arguments[:1] == ["fingerprint"] else serve()
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"dockyard-agent: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
