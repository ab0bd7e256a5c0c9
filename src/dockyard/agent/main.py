"""`dockyard-agent`: read the agent's settings from the environment and serve."""

from __future__ import annotations

import sys

from dockyard import __version__


def serve() -> None:
    import uvicorn

    from dockyard.agent.app import create_app
    from dockyard.agent.settings import AgentSettings
    from dockyard.kernel.logging import configure_logging

    settings = AgentSettings()
    configure_logging(settings.log_level, settings.log_json)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                timeout_graceful_shutdown=10)


def run() -> None:
    """`--version` prints the version; otherwise serve, failing with one line, not a trace."""
    if "--version" in sys.argv[1:]:
        print(f"dockyard-agent {__version__}")
        return
    try:
        serve()
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"dockyard-agent: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run()
