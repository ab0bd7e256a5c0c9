"""An ASGI app served by uvicorn on a loopback port, in a thread of this process: how each
fake of an outside API runs in a test."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn


class Served:
    """`app` on 127.0.0.1:`port` (0: a free one), listening from the moment it is made, so
    early clients wait in the backlog rather than being refused."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.socket = socket.create_server(("127.0.0.1", port))
        # answers leave at once, not after the client's delayed ACK (40 ms each)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self.socket.close()

    def run_here(self) -> None:
        """Serve in this thread until interrupted (a fake run as its own process)."""
        self.server.run(sockets=[self.socket])
