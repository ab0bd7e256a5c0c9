"""profiled_function: timings of the calls under an entry, logged when the entry returns."""

from __future__ import annotations

import asyncio
import inspect
import logging

import httpx
import pytest
from fastapi import FastAPI

from dockyard.kernel.profiling import profiled_function


@profiled_function
async def load(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


@profiled_function
def render(value: int, *, suffix: str = "!") -> str:
    return f"{value}{suffix}"


@profiled_function(entry=True)
async def handle(n: int) -> str:
    return render(await load(n)) + render(await load(n + 1))


def profile_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dockyard.profile"]


async def test_the_entry_logs_every_profiled_call_under_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="dockyard.profile"):
        assert await handle(1) == "2!4!"
    [record] = profile_records(caplog)
    calls = [entry["function"].rsplit(".", 1)[-1] for entry in record.profile]  # type: ignore[attr-defined]
    assert calls == ["load", "render", "load", "render", "handle"]
    assert all(entry["ms"] >= 0 for entry in record.profile)  # type: ignore[attr-defined]
    assert "profile of tests.metrics.test_profiling.handle" in record.getMessage()


async def test_calls_outside_an_entry_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dockyard.profile"):
        assert await load(2) == 4
        assert render(3) == "3!"
    assert profile_records(caplog) == []


async def test_an_entry_that_raises_still_logs_its_profile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @profiled_function(entry=True)
    def explode() -> None:
        render(1)
        raise KeyError("boom")

    with caplog.at_level(logging.INFO, logger="dockyard.profile"), pytest.raises(KeyError):
        explode()
    [record] = profile_records(caplog)
    assert len(record.profile) == 2  # type: ignore[attr-defined]


def test_the_wrapped_signature_is_kept() -> None:
    assert inspect.signature(render) == inspect.signature(render.__wrapped__)  # type: ignore[attr-defined]
    assert render.__name__ == "render"
    assert inspect.iscoroutinefunction(load)


async def test_fastapi_sees_the_parameters_of_a_profiled_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    @profiled_function(entry=True)
    async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
        return {"item_id": item_id, "q": q, "double": await load(item_id)}

    params = app.openapi()["paths"]["/items/{item_id}"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in params] == [("item_id", "path"), ("q", "query")]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        with caplog.at_level(logging.INFO, logger="dockyard.profile"):
            answer = await http.get("/items/21", params={"q": "x"})
    assert answer.json() == {"item_id": 21, "q": "x", "double": 42}
    [record] = profile_records(caplog)
    assert len(record.profile) == 2  # type: ignore[attr-defined]
