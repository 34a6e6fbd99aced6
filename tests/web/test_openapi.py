"""The OpenAPI 3.1 document is valid, covers every lifecycle, and schemathesis finds no 5xx answer."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error

from tests.web.conftest import start_probe
from web.openapi import build_openapi
from web.services import create_token


def test_openapi_document_is_valid_3_1(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)
    assert "/api/v1/workflows/web_probe/cases" in doc["paths"]
    assert "/api/v1/workflows/exam_voucher/cases" in doc["paths"]
    schemas = doc["components"]["schemas"]
    # request schemas come from the lifecycles' own declarations
    assert schemas["web_probe.start"]["properties"]["amount"]["pattern"] == r"^\d+(\.\d{1,2})?$"
    assert schemas["web_probe.approve"]["properties"]["level"]["enum"] == ["low", "high"]
    assert schemas["exam_voucher.start"]["required"] == ["exam", "users"]
    assert "exam_voucher.remind_issue" not in schemas  # system-only events are not offered
    assert schemas["FireBody"]["properties"]["expected_version"]["type"] == "integer"


def test_every_registered_workflow_is_documented(registry):
    doc = build_openapi(registry)
    validate(doc)
    for wf in registry:
        assert f"/api/v1/workflows/{wf.name}/cases" in doc["paths"]
        assert f"{wf.name}.start" in doc["components"]["schemas"]


@pytest.fixture
def api_schema(app, rt, users):
    start_probe(rt, users)
    token = create_token(rt, "root", "schemathesis")["token"]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.token = token  # type: ignore[attr-defined]
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_never_answers_5xx(case, api_schema):
    response = case.call(headers={"Authorization": f"Bearer {api_schema.token}"})
    case.validate_response(response, checks=(not_a_server_error,))
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json"), response.text
