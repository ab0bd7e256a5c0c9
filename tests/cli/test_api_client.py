"""What the CLI says when the API cannot be reached, or takes a request and does not answer:
a listener that accepts and never answers, and a port nothing listens on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from dockyard.cli.client import ApiClient, CliError
from tests.ports import free_port


@pytest.fixture
def silent_api() -> Iterator[str]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_an_api_that_takes_the_request_and_does_not_answer_is_not_called_unreachable(
        silent_api: str) -> None:
    with pytest.raises(CliError) as failed:
        ApiClient(silent_api, "token").request("GET", "/projects", timeout=httpx.Timeout(0.5))
    assert "took the request but did not answer in time" in str(failed.value)
    assert "may still be carrying it out" in str(failed.value)


def test_an_api_that_is_not_there_is_called_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CliError) as failed:
        ApiClient(url, "token").request("GET", "/projects")
    assert f"cannot reach the Dockyard API at {url} (ConnectError)" in str(failed.value)
