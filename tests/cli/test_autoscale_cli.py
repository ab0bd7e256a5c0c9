"""`dockyard autoscale set|show|decisions|off` against a control plane started with
`dockyard up`: what it says, and refusals in one line a person can act on."""

from __future__ import annotations

from tests.live import Live, ok, ok_json, one_line_error


def test_a_policy_is_set_shown_and_turned_off(live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop"))
    said = ok(live.run("autoscale", "set", "-p", "shop", "-s", "web", "--min", "1", "--max", "4",
                       "--target-rps", "20"))
    assert " ".join(said.split()) == ("Auto-scaling shop/web web: 1..4 replicas per server, "
                                      "target 20 req/s per replica, cool-down 60 s.")
    ok(live.run("autoscale", "set", "-p", "shop", "-s", "web", "--min", "2", "--max", "3",
                "--target-cpu", "70", "--cooldown", "120"))
    shown = ok_json(live.run("autoscale", "show", "-p", "shop", "-s", "web", "--json"))
    assert (shown["min"], shown["max"], shown["target_rps"], shown["target_cpu"],
            shown["cooldown_seconds"], shown["set_by"]) == (2, 3, None, 70.0, 120,
                                                            "owner@example.com")
    assert ok_json(live.run("autoscale", "decisions", "-p", "shop", "-s", "web", "--json")) == []
    assert "is off" in ok(live.run("autoscale", "off", "-p", "shop", "-s", "web"))
    one_line_error(live.run("autoscale", "show", "-p", "shop", "-s", "web"),
                   "autoscale policy of service 'shop/web' was not found", "404")


def test_a_policy_that_cannot_be_is_one_line(live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop"))
    one_line_error(live.run("autoscale", "set", "-p", "shop", "-s", "web", "--min", "5",
                            "--max", "2", "--target-rps", "20"), "min (5) is more than max (2)")
    one_line_error(live.run("autoscale", "set", "-p", "shop", "-s", "web", "--min", "1",
                            "--max", "2", "--target-rps", "20", "--target-cpu", "50"),
                   "give exactly one target")
