"""The agent's own Docker Engine client: what it sends (query strings, filters, quoted paths)
and how it reads what Docker streams back (JSON values and log frames cut anywhere), without
a Docker; the calls themselves run against the machine's Docker in the other agent tests."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.agent.engine import EngineClient
from dockyard.agent.engine_http import EngineError, filters, frames, json_objects, path, query


def cut_everywhere(data: bytes) -> Iterator[list[bytes]]:
    for at in range(len(data) + 1):
        yield [data[:at], data[at:]]
    yield [data[i:i + 1] for i in range(len(data))]


def test_json_values_come_out_whole_however_the_stream_is_cut() -> None:
    values = [{"status": "Pulling"}, {"stream": "Step 1/2 : FROM base\n"}, {"error": "é"}]
    data = "\r\n".join(json.dumps(v, ensure_ascii=False) for v in values).encode() + b"\r\n"
    for chunks in cut_everywhere(data):
        assert list(json_objects(chunks)) == values


def test_log_frames_come_out_whole_with_their_stream_however_they_are_cut() -> None:
    written = [(1, b"out line\n"), (2, b"err \xff line\n"), (1, b"")]
    data = b"".join(struct.pack(">BxxxL", stream, len(payload)) + payload
                    for stream, payload in written)
    for chunks in cut_everywhere(data):
        assert list(frames(chunks)) == written


def test_queries_say_booleans_as_numbers_repeat_lists_and_leave_out_none() -> None:
    assert query({"all": True, "v": False, "since": None, "changes": ["ENV A=1", "CMD x"],
                  "tail": "all"}) == "?all=1&v=0&changes=ENV+A%3D1&changes=CMD+x&tail=all"
    assert query({"since": None}) == ""


def test_filters_are_json_lists_of_strings() -> None:
    assert json.loads(filters({"dangling": True, "until": "60s", "label": ["a=b", "c"]})
                      or "") == {"dangling": ["true"], "until": ["60s"], "label": ["a=b", "c"]}
    assert filters({}) is None


def test_names_in_paths_are_quoted_but_image_references_keep_their_slashes_and_colons(
        ) -> None:
    assert path("/images/{}/tag", "10.0.0.1:5000/shop/web:deploy_1") == (
        "/images/10.0.0.1:5000/shop/web:deploy_1/tag")
    assert path("/containers/{}/json", "a b?c#d") == "/containers/a%20b%3Fc%23d/json"


def serve_once(sock_path: Path, answer: bytes) -> list[bytes]:
    """A unix socket that reads one request and answers `answer`; what it read."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        received.append(connection.recv(65536))
        connection.sendall(answer)
        connection.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return received


def test_a_refusal_carries_dockers_message_and_a_client_status(tmp_path: Path) -> None:
    body = b'{"message":"No such container: web-1"}'
    received = serve_once(tmp_path / "docker.sock", b"HTTP/1.1 404 Not Found\r\n"
                          b"Content-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)
    with pytest.raises(EngineError) as refused:
        EngineClient(f"unix://{tmp_path}/docker.sock", 5).inspect_container("web-1")
    assert (refused.value.status_code, str(refused.value)) == (404, "No such container: web-1")
    assert received[0].startswith(b"GET /containers/web-1/json HTTP/1.1\r\n")


def test_a_server_error_is_a_bad_gateway_and_no_docker_is_unavailable(tmp_path: Path) -> None:
    serve_once(tmp_path / "docker.sock",
               b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom")
    with pytest.raises(EngineError) as failed:
        EngineClient(f"unix://{tmp_path}/docker.sock", 5).info()
    assert (failed.value.status_code, str(failed.value)) == (502, "boom")
    with pytest.raises(EngineError) as unreachable:
        EngineClient(f"unix://{tmp_path}/none.sock", 5).info()
    assert unreachable.value.status_code == 503
    assert "docker engine unreachable" in str(unreachable.value)
