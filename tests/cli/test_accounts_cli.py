"""Invitations, passwords, sessions and logout through the real `dockyard` CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.live import ADMIN_EMAIL, Live, ok, ok_json, one_line_error

PERSON = "ana@example.com"
FIRST, SECOND = "anas-own-password", "anas-second-password"


def test_an_invited_person_joins_changes_password_leaves_and_deletes_the_account(
    live: Live, tmp_path: Path
) -> None:
    invited = ok(live.run("invite", PERSON, "--role", "member"))
    token = next(w for w in invited.split() if w.startswith("dyi_"))
    assert f"#{token}" in invited  # the link carries the secret after '#'
    listed = ok_json(live.run("invitations", "list", "--json"))
    assert [(i["email"], i["role"]) for i in listed] == [(PERSON, "member")]
    assert token not in json.dumps(listed)

    ana = {"XDG_CONFIG_HOME": str(tmp_path / "ana")}
    mismatch = live.run("accept", token, "--url", live.url, input="one-password\nanother\n", **ana)
    one_line_error(mismatch, "the two passwords differ")
    joined = live.run("accept", f"{live.url}/invite#{token}", "--url", live.url,
                      input=f"{FIRST}\n{FIRST}\n", **ana)
    assert f"member of default as {PERSON}" in ok(joined)
    assert ok_json(live.run("whoami", "--json", **ana))["user"]["email"] == PERSON
    assert ok_json(live.run("invitations", "list", "--json")) == []
    one_line_error(live.run("accept", token, **ana), "used already", "HTTP 410")

    # Ana's own workspace invites the owner, who accepts while logged in.
    ok(live.run("workspaces", "create", "anas", **ana))
    ok(live.run("login", "--url", live.url, "--email", PERSON, "--workspace", "anas",
                input=f"{FIRST}\n", **ana))
    back = ok(live.run("invite", ADMIN_EMAIL, "--role", "owner", **ana))
    accepted = live.run("accept", next(w for w in back.split() if w.startswith("dyi_")))
    assert f"owner of anas as {ADMIN_EMAIL}" in ok(accepted)

    changed = live.run("passwd", input=f"{FIRST}\n{SECOND}\n{SECOND}\n", **ana)
    assert "ended 0 other session(s) and 1 API token(s)" in ok(changed)  # the first login's
    assert ok_json(live.run("whoami", "--json", **ana))["role"] == "owner"
    assert "Removed ana@example.com" in ok(live.run("members", "remove", PERSON, **ana))  # leaves
    ok(live.run("login", "--url", live.url, "--email", PERSON, "--workspace", "default",
                input=f"{SECOND}\n", **ana))

    still_in = live.run("account", "delete", "--email", PERSON, input=f"{SECOND}\n", **ana)
    one_line_error(still_in, "still a member", "HTTP 409")
    assert "Removed ana@example.com" in ok(live.run("members", "remove", PERSON))
    one_line_error(live.run("whoami", **ana), "HTTP 401")
    deleted = live.run("account", "delete", "--email", PERSON, "--url", live.url,
                       input=f"{SECOND}\n", **ana)
    assert f"Deleted the account {PERSON}" in ok(deleted)
    members = ok_json(live.run("members", "list", "--json"))
    assert [m["email"] for m in members] == [ADMIN_EMAIL]


def test_logout_revokes_the_token_and_tokens_can_be_capped(live: Live) -> None:
    viewer = ok_json(live.run("tokens", "create", "readonly", "--role", "viewer", "--json"))
    read_only = {"DOCKYARD_TOKEN": viewer["token"]}
    one_line_error(live.run("projects", "create", "shop", **read_only), "HTTP 403")
    sessions = ok_json(live.run("sessions", "list", "--json"))
    assert sessions == []  # `dockyard up` logged the CLI in and ended its login session
    saved = live.config_token()
    assert "Logged out" in ok(live.run("logout"))
    one_line_error(live.run("whoami", DOCKYARD_TOKEN=saved), "HTTP 401")
    one_line_error(live.run("invite", PERSON), "not logged in")
