"""`dockyard previews limit|list` against a control plane started with `dockyard up`."""

from __future__ import annotations

from tests.live import Live, ok, ok_json, one_line_error


def test_a_projects_preview_limit_is_set_and_its_previews_listed(live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    said = ok(live.run("previews", "limit", "-p", "shop", "5"))
    assert " ".join(said.split()) == "Project shop may run 5 preview(s) at once."
    assert ok_json(live.run("projects", "show", "shop", "--json"))["preview_limit"] == 5
    assert ok_json(live.run("previews", "list", "-p", "shop", "--json")) == []
    assert "pull_request" in ok(live.run("previews", "list", "-p", "shop"))
    refused = live.run("previews", "limit", "-p", "shop", "51")
    assert refused.returncode != 0
    assert "less than or equal to 50" in refused.stderr, refused.stderr
    one_line_error(live.run("previews", "list", "-p", "nowhere"), "project 'nowhere' was not found")
