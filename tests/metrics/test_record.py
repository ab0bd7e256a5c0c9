"""The parts of a request record that are pure functions."""

from __future__ import annotations

from dockyard.kernel.metrics.prometheus import route_label
from dockyard.kernel.metrics.record import (
    MASK,
    RequestFacts,
    error_detail,
    query_params,
    recorded_headers,
)


def test_query_params_keep_repeats_and_mask_secrets() -> None:
    parsed = query_params(b"page=2&tag=a&tag=b&api_token=s3cret&Password=x&empty=")
    assert parsed == {"page": "2", "tag": ["a", "b"], "api_token": MASK, "Password": MASK,
                      "empty": ""}


def test_error_detail_reads_the_json_detail_of_an_error_answer() -> None:
    facts = RequestFacts(status_code=404, error_body=bytearray(b'{"detail":"no such project"}'))
    assert error_detail(facts) == "no such project"
    structured = RequestFacts(status_code=422, error_body=bytearray(b'{"detail":[{"loc":["q"]}]}'))
    assert error_detail(structured) == '[{"loc": ["q"]}]'
    plain = RequestFacts(status_code=502, error_body=bytearray(b"bad gateway"))
    assert error_detail(plain) == "bad gateway"


def test_success_has_no_error_detail_and_an_exception_names_itself() -> None:
    assert error_detail(RequestFacts(status_code=200, error_body=bytearray(b"x"))) is None
    assert error_detail(RequestFacts(status_code=500, error="KeyError")) == "KeyError"


class Route:
    def __init__(self, path_format: str) -> None:
        self.path_format = path_format


def test_route_label_is_the_full_template() -> None:
    nested = {"route": Route("/projects/{project}"), "path": "/api/v1/projects/shop",
              "path_params": {"project": "shop"}}
    assert route_label(nested) == "/api/v1/projects/{project}"
    same_as_literal = {"route": Route("/projects/{project}"), "path": "/api/v1/projects/projects",
                       "path_params": {"project": "projects"}}
    assert route_label(same_as_literal) == "/api/v1/projects/{project}"
    assert route_label({"path": "/nowhere"}) == "unmatched"


def test_recorded_headers_keep_the_first_of_repeats_and_only_what_a_record_uses() -> None:
    scope = {"headers": [(b"x-forwarded-for", b"203.0.113.9"), (b"cookie", b"s=1"),
                         (b"x-forwarded-for", b"198.51.100.1"), (b"user-agent", b"probe/1.0")]}
    assert recorded_headers(scope) == {"x-forwarded-for": "203.0.113.9",
                                       "user-agent": "probe/1.0"}
    assert query_params(b"") == {}
