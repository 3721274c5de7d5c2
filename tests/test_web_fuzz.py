"""Property-based fuzzing of the REST API against its own OpenAPI schema: never a 5xx."""

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from deepdenoise.web.app import ServeConfig, create_app  # noqa: E402

schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(ServeConfig(max_upload_bytes=200_000, max_pixels=40_000)))


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:  # type: ignore[no-untyped-def]
    response = case.call()
    assert response.status_code < 500, response.text[:300]
