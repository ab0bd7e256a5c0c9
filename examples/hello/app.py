"""Hello, Dockyard: a standard-library web app for trying deployments.

It listens on $PORT (default 8000) and answers:
  GET /         a small HTML page with $GREETING and $DOCKYARD_RELEASE
  GET /healthz  200 "ok"
  GET /api      JSON {greeting, release, hostname}

On SIGTERM (what `docker stop` sends) it stops accepting connections, lets the requests
already in flight finish, and exits 0.
"""

from __future__ import annotations

import html
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

DEFAULT_GREETING = "Hello from Dockyard"


def facts() -> dict[str, str | None]:
    return {
        "greeting": os.environ.get("GREETING", DEFAULT_GREETING),
        "release": os.environ.get("DOCKYARD_RELEASE") or None,
        "hostname": socket.gethostname(),
    }


def page(values: dict[str, str | None]) -> str:
    greeting = html.escape(values["greeting"] or "")
    release = values["release"]
    footer = f"<p>Release {html.escape(release)}</p>\n" if release else ""
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{greeting}</title></head>\n"
        f"<body><h1>{greeting}</h1>\n{footer}</body></html>\n"
    )


class Handler(BaseHTTPRequestHandler):
    server_version = "hello-dockyard/1.0"

    def do_GET(self) -> None:  # the name http.server calls
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.reply(200, "text/html; charset=utf-8", page(facts()))
        elif path == "/healthz":
            self.reply(200, "text/plain; charset=utf-8", "ok")
        elif path == "/api":
            self.reply(200, "application/json", json.dumps(facts()))
        else:
            self.reply(404, "text/plain; charset=utf-8", "not found")

    def reply(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight
    block_on_close = True
    # The standard library listens with a backlog of 5: a burst of new connections (a proxy
    # switching all its traffic here at once) would overflow it and see resets.
    request_queue_size = 1024


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    server = Server(("0.0.0.0", port), Handler)  # noqa: S104 - a container serves on all

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on port {port}", flush=True)
    server.serve_forever()
    server.server_close()  # closes the listener, then joins the request threads
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
