"""The OpenAPI schema: complete, valid, served with its docs under the CSP, and true to the API.

schemathesis generates requests for every operation from the live schema (a bounded number of
examples each, as an authenticated client with a read-write token over both campaigns) and checks
that none is a server error and every response conforms to the schema (status code, content type,
headers, body).
"""

import os
import re

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.signals import request_started
from django.db import close_old_connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from annotation.tokens import token_create
from webapp.wsgi import application

pytestmark = pytest.mark.django_db

# The schema and its docs page describe the API; they are not part of it.
NOT_IN_SCHEMA = {"/api/schema/", "/api/docs/"}
MAX_EXAMPLES = int(os.environ.get("LOUPE_SCHEMATHESIS_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _route_paths(patterns, prefix: str = "") -> list[str]:
    """Every URL in the resolver as a path template, parameters written `{}`."""
    out = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            out += _route_paths(entry.url_patterns, prefix + _template(entry.pattern))
        elif isinstance(entry, URLPattern):
            out.append(prefix + _template(entry.pattern))
    return out


def _template(pattern) -> str:
    text = str(pattern)
    text = re.sub(r"\(\?P<\w+>[^)]*\)", "{}", text)  # re_path / routers: (?P<pk>[^/.]+)
    text = re.sub(r"<(?:\w+:)?\w+>", "{}", text)  # path("<int:pk>/")
    return text.lstrip("^").rstrip("$").replace("\\.", ".")


def _schema_paths() -> set[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {re.sub(r"\{\w+\}", "{}", p) for p in schema["paths"]}


def test_every_api_route_is_in_the_schema():
    routes = {"/" + p for p in _route_paths(get_resolver().url_patterns) if p.startswith("api/")}
    assert len(routes) > 15
    missing = sorted(routes - NOT_IN_SCHEMA - _schema_paths())
    assert not missing, f"API routes missing from the OpenAPI schema: {missing}"


def test_schema_is_served_and_valid_openapi_3():
    response = Client().get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
    }


def test_docs_use_vendored_assets_and_no_inline_script():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert all(s.startswith("/") for s in sources), sources  # same origin: no CDN
    for src in sources:
        if src.startswith("/static/"):
            assert finders.find(src.removeprefix("/static/")), src
    initialiser = next(s for s in sources if "script" in s and not s.startswith("/static/"))
    script = Client().get(initialiser)
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


def _operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted((path, method.upper()) for path, item in schema["paths"].items() for method in item)


@pytest.fixture
def live_schema():
    """The schema as served, loaded through the WSGI app (Django's own test client would do the same:
    keep the test's database connection open across requests)."""
    request_started.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)


@pytest.mark.parametrize(("path", "method"), _operations())
def test_schemathesis_no_server_errors_and_responses_conform(world, live_schema, path, method):
    admin = world.users["admin"]
    _, plaintext = token_create(
        user=admin, name="fuzz", campaigns=[world.round_a.campaign, world.round_b.campaign], write=True
    )
    headers = {"Authorization": f"Bearer {plaintext}"}
    operation = live_schema[path][method]

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
    # Real objects too, so detail responses (not only 404s) are checked against the schema.
    if "{id}" in path:
        real_id = _real_id(world, path)
        body = {"body": {"choice": "tie"}} if path.endswith("/judgment/") else {}
        case = operation.Case(path_parameters={"id": real_id}, **body)
        case.call_and_validate(headers=headers, checks=CHECKS)
        if path.endswith("/export/"):  # every shape of the streamed file, validated as a binary body
            for query in ({"format": "jsonl", "raw": "true"}, {"format": "parquet", "raw": "true", "media": "embed"}):
                operation.Case(path_parameters={"id": real_id}, query=query).call_and_validate(
                    headers=headers, checks=CHECKS
                )
    elif method == "GET":
        operation.Case(query={"page_size": 2}).call_and_validate(headers=headers, checks=CHECKS)


def _real_id(world, path: str) -> int:
    from annotation.services.leases import assignment_claim_next

    resource = path.split("/")[3]
    if resource == "assignments":
        return assignment_claim_next(annotator=world.users["admin"], round_=world.round_a).id
    if resource == "snapshots":
        from annotation.export import snapshot_create

        return snapshot_create(campaign=world.round_a.campaign, fmt="parquet", created_by=None).id
    sample = world.round_a.samples.first()
    return {
        "campaigns": world.round_a.campaign_id,
        "rounds": world.round_a.id,
        "prompts": sample.prompt_id,
        "samples": sample.id,
        "comparisons": world.objects["comparison_a"].id,
        "judgments": world.objects["judgment_ann"].id,
        "model-versions": sample.model_version_id,
        "training-jobs": world.round_a.generation_job.id,
    }[resource]
