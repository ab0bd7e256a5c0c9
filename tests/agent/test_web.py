"""The agent's HTTP layer answers as the FastAPI app it replaced did: the statuses, headers
and bodies below were recorded from that app (issue 16), byte for byte."""

from __future__ import annotations

import httpx
import pytest

from dockyard.agent import auth
from tests.agent.conftest import SECRET

JSON = {"content-type": "application/json"}
NAME_ERROR = ('{"loc":["path","name"],"msg":"use letters, digits, \'_\', \'.\' and \'-\' '
              '(at most 128)","type":"invalid_format"}')
CASES = [
    ("GET", "/nope", None, None, 404, '{"detail":"Not Found"}'),
    ("GET", "/containers/bad%20name!/logs?tail=-1&follow=maybe", None, None, 422,
     '{"detail":[' + NAME_ERROR + ',{"loc":["query","follow"],"msg":"Input should be a valid '
     'boolean, unable to interpret input","type":"bool_parsing"},{"loc":["query","tail"],'
     '"msg":"Input should be greater than or equal to 0","type":"greater_than_equal"}]}'),
    ("GET", "/processes", None, None, 422,
     '{"detail":[{"loc":["query","service"],"msg":"Field required","type":"missing"}]}'),
    ("PUT", "/firewall/bad!", b'{"name": 3, "port": 0}', JSON, 422,
     '{"detail":[' + NAME_ERROR + ',{"loc":["body","name"],"msg":"Input should be a valid '
     'string","type":"string_type"},{"loc":["body","port"],"msg":"Input should be greater '
     'than or equal to 1","type":"greater_than_equal"}]}'),
    ("POST", "/images/build?repository=a&tag=b&build_arg=bad&memory_mb=1", b"", JSON, 422,
     '{"detail":[{"loc":["query","build_arg",0],"msg":"use KEY=value (a key of letters, '
     'digits and \'_\', a value on one line)","type":"invalid_format"},{"loc":["query",'
     '"memory_mb"],"msg":"Input should be greater than or equal to 6","type":'
     '"greater_than_equal"}]}'),
    ("POST", "/agent/upgrade", b"", JSON, 422,
     '{"detail":[{"loc":["query","version"],"msg":"Field required","type":"missing"},'
     '{"loc":["query","sha256"],"msg":"Field required","type":"missing"}]}'),
    ("POST", "/containers", None, JSON, 422,
     '{"detail":[{"loc":["body"],"msg":"Field required","type":"missing"}]}'),
    ("POST", "/containers", b"{not json", JSON, 422,
     '{"detail":[{"loc":["body",1],"msg":"JSON decode error","type":"json_invalid"}]}'),
    ("POST", "/containers", b'{"a": 1}', {"content-type": "text/plain"}, 422,
     '{"detail":[{"loc":["body"],"msg":"Input should be a valid dictionary or object to '
     'extract fields from","type":"model_attributes_type"}]}'),
    ("POST", "/containers", b"\xff\xfe\x00", JSON, 400,
     '{"detail":"There was an error parsing the body"}'),
    ("PUT", "/firewall/a", b'{"name": "b", "port": 80, "allow": []}', JSON, 422,
     '{"detail":"the rule is named \'b\' but was sent to /firewall/a"}'),
    ("GET", "/metrics/requests?after=5", None, None, 200, '{"cursor":5,"buckets":[],"lost":0}'),
    ("PUT", "/acme-challenges/tok", b'{"key_authorization": "tok.abc"}', JSON, 204, ""),
]


def signed(method: str, path: str, body: bytes | None, headers: dict[str, str] | None
           ) -> httpx.Request:
    request = httpx.Request(method, "http://agent.test" + path, content=body or b"",
                            headers=headers)
    claim = auth.SignedRequest(method, request.url.raw_path.decode("ascii"),
                               auth.body_digest(body or b""), int(auth.now()), auth.new_nonce())
    request.headers.update(auth.signature_headers(auth.derive_agent_key(SECRET), claim))
    return request


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "text"), CASES)
async def test_an_answer_is_what_the_fastapi_agent_answered(
        agent_transport: httpx.ASGITransport, method: str, path: str, body: bytes | None,
        headers: dict[str, str] | None, status: int, text: str) -> None:
    async with httpx.AsyncClient(transport=agent_transport) as http:
        answer = await http.send(signed(method, path, body, headers))
    assert (answer.status_code, answer.text) == (status, text)
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers.get("content-length") == (None if status == 204 else str(len(text)))


async def test_a_method_a_path_does_not_take_is_405_naming_the_one_it_does(
        agent_transport: httpx.ASGITransport) -> None:
    async with httpx.AsyncClient(transport=agent_transport) as http:
        delete = await http.send(signed("DELETE", "/info", None, None))
        head = await http.send(signed("HEAD", "/info", None, None))
    assert (delete.status_code, delete.json()) == (405, {"detail": "Method Not Allowed"})
    assert delete.headers["allow"] == "GET"
    assert (head.status_code, head.headers["allow"]) == (405, "GET")  # no implicit HEAD
