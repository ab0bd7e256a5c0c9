"""Who pushes or fetches: HTTP Basic whose password is a Dockyard API token (git's
credential helper sends it), checked as every API credential is."""

from __future__ import annotations

import base64
import binascii

from dockyard.core import auth
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.kernel.errors import NotAuthenticated

REALM = "Dockyard"
CHALLENGE = f'Basic realm="{REALM}"'
ASK = ("authentication required: use a Dockyard API token as the password (any user name); "
       "`dockyard git remote` sets git up to send the CLI's own")


def basic_password(header: str | None) -> str | None:
    """The password of an `Authorization: Basic ...` header; None for anything else."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


async def git_actor(p: Platform, header: str | None, client: str) -> Actor:
    """The actor of the token in `header`; a wrong token counts against the client's
    attempts (as logins do), so guessing is rate limited."""
    token = basic_password(header)
    if token is None:
        raise NotAuthenticated(ASK)
    try:
        return await auth.authenticate(p, token)
    except NotAuthenticated:
        p.limiters.per_client.hit(f"git:client:{client}")
        raise
