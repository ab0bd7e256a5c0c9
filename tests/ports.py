"""Free ports for the programs a test starts."""

from __future__ import annotations

import random
import socket

# Below the kernel's ephemeral range (32768-60999 here): an outgoing connection of any
# process can take a port of that range between our probe and the bind of the program the
# port is for; nothing takes a port of this one unasked.
RANGE = range(15000, 32000)
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, never handed out twice in this process."""
    while True:
        port = random.choice(RANGE)
        if port not in _handed_out and _bindable(host, port):
            _handed_out.add(port)
            return port


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True
