"""Invitations, passwords, sessions and logout through the real `dockyard` CLI, against one
control plane for the module (tests/cli/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import User
from tests.live import Live, ok, ok_json, one_line_error

PERSON = "ana@example.com"
FIRST, SECOND = "anas-own-password", "anas-second-password"


def test_an_invited_person_joins_changes_password_leaves_and_deletes_the_account(
    user: User, tmp_path: Path
) -> None:
    invited = ok(user.run("invite", PERSON, "--role", "member"))
    token = next(w for w in invited.split() if w.startswith("dyi_"))
    assert f"#{token}" in invited  # the link carries the secret after '#'
    listed = ok_json(user.run("invitations", "list", "--json"))
    assert [(i["email"], i["role"]) for i in listed] == [(PERSON, "member")]
    assert token not in json.dumps(listed)

    ana = {"XDG_CONFIG_HOME": str(tmp_path / "ana")}
    mismatch = user.run("accept", token, "--url", user.url, input="one-password\nanother\n", **ana)
    one_line_error(mismatch, "the two passwords differ")
    joined = user.run("accept", f"{user.url}/invite#{token}", "--url", user.url,
                      input=f"{FIRST}\n{FIRST}\n", **ana)
    assert f"member of {user.workspace} as {PERSON}" in ok(joined)
    assert ok_json(user.run("whoami", "--json", **ana))["user"]["email"] == PERSON
    assert ok_json(user.run("invitations", "list", "--json")) == []
    one_line_error(user.run("accept", token, **ana), "used already", "HTTP 410")

    # Ana's own workspace invites the owner, who accepts while logged in.
    ok(user.run("workspaces", "create", "anas", **ana))
    ok(user.run("login", "--url", user.url, "--email", PERSON, "--workspace", "anas",
                input=f"{FIRST}\n", **ana))
    back = ok(user.run("invite", user.email, "--role", "owner", **ana))
    accepted = user.run("accept", next(w for w in back.split() if w.startswith("dyi_")))
    assert f"owner of anas as {user.email}" in ok(accepted)

    changed = user.run("passwd", input=f"{FIRST}\n{SECOND}\n{SECOND}\n", **ana)
    assert "ended 0 other session(s) and 1 API token(s)" in ok(changed)  # the first login's
    assert ok_json(user.run("whoami", "--json", **ana))["role"] == "owner"
    assert "Removed ana@example.com" in ok(user.run("members", "remove", PERSON, **ana))  # leaves
    ok(user.run("login", "--url", user.url, "--email", PERSON, "--workspace", user.workspace,
                input=f"{SECOND}\n", **ana))

    still_in = user.run("account", "delete", "--email", PERSON, input=f"{SECOND}\n", **ana)
    one_line_error(still_in, "still a member", "HTTP 409")
    assert "Removed ana@example.com" in ok(user.run("members", "remove", PERSON))
    one_line_error(user.run("whoami", **ana), "HTTP 401")
    deleted = user.run("account", "delete", "--email", PERSON, "--url", user.url,
                       input=f"{SECOND}\n", **ana)
    assert f"Deleted the account {PERSON}" in ok(deleted)
    members = ok_json(user.run("members", "list", "--json"))
    assert [m["email"] for m in members] == [user.email]


def test_logout_revokes_the_token_and_tokens_can_be_capped(plane: Live) -> None:
    viewer = ok_json(plane.run("tokens", "create", "readonly", "--role", "viewer", "--json"))
    read_only = {"DOCKYARD_TOKEN": viewer["token"]}
    one_line_error(plane.run("projects", "create", "shop", **read_only), "HTTP 403")
    sessions = ok_json(plane.run("sessions", "list", "--json"))
    assert sessions == []  # `dockyard up` logged the CLI in and ended its login session
    saved = plane.config_token()
    assert "Logged out" in ok(plane.run("logout"))
    one_line_error(plane.run("whoami", DOCKYARD_TOKEN=saved), "HTTP 401")
    one_line_error(plane.run("invite", PERSON), "not logged in")
