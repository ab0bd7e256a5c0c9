"""A deployment's event stream as the Deployment page reads it, for its tests: a network blip
on its way, and the events the page shows."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

import httpx
from playwright.sync_api import Page, Route

EVENTS_URL = re.compile(r"/api/v1/infra/deployments/[0-9a-f]+/events$")


class Blip:
    """A network blip on the way of the page's event stream (`page.route(EVENTS_URL, blip)`):
    the first connection ends after the events there are so far, as a dropped line does;
    while `down`, connecting fails; after that, the page's reconnections reach the API."""

    def __init__(self) -> None:
        self.cut, self.down = False, True

    def __call__(self, route: Route) -> None:
        if not self.cut:
            self.cut = True
            route.fulfill(status=200, content_type="text/event-stream", body=so_far(route))
        elif self.down:
            route.abort("internetdisconnected")
        else:
            route.continue_()


def so_far(route: Route) -> str:
    """The whole frames of the stream the route asks for that come in about two seconds."""
    wanted = ("authorization", "last-event-id", "x-dockyard-workspace")
    headers = {k: v for k, v in route.request.headers.items() if k in wanted}
    text, until = "", time.monotonic() + 2
    with httpx.stream("GET", route.request.url, headers=headers,
                      timeout=httpx.Timeout(30, read=1)) as answer:
        try:
            for chunk in answer.iter_text():
                text += chunk
                if time.monotonic() > until:
                    break
        except httpx.ReadTimeout:
            pass
    return text[:text.rfind("\n\n") + 2]


def event_ids(api: str, deployment_id: str, headers: Mapping[str, str]) -> list[int]:
    """The ids of every event of a deployment, from the API (`api`: its /api/v1 URL), once
    it has ended."""
    answer = httpx.get(f"{api}/infra/deployments/{deployment_id}/events", headers=headers,
                       timeout=httpx.Timeout(30, read=600))
    assert answer.status_code == 200, answer.text
    return [int(line[4:]) for line in answer.text.splitlines() if line.startswith("id: ")]


def shown_events(page: Page) -> list[int]:
    """The ids of the events on the page, in order (the page groups them by server)."""
    return sorted(int(seq) for seq in page.locator("[data-seq]").evaluate_all(
        "items => items.map(item => item.dataset.seq)"))
