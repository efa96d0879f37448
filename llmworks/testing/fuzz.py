"""What a fuzzed answer must satisfy (tests/serve): schemathesis's checks that it is no server error and
is what the server's own /openapi.json documents (status, content type, headers, body)."""

from __future__ import annotations

from typing import Any

from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def check_answer(case: Any, response: Any) -> None:
    """Raises schemathesis's failure group, naming each check the answer fails."""
    case.validate_response(response, checks=CHECKS)
