"""``/openapi.json`` (a valid OpenAPI 3 document naming every route, with the bodies each
one takes) and ``/docs`` (Swagger UI).  ``disable_openapi_url=True`` is tested with the
shutdown API in test_front_surface.py (one server fewer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from litserve import wire

from .harness import Server, serve_ready

APIS = ";".join([
    "front_surface:Square",
    'front_surface:Typed({"api_path": "/typed"})',
    'front_surface:Counter({"api_path": "/stream", "stream": true})',
    "front_surface:Chat",
])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = Server(APIS, {"enable_shutdown_api": True, "info_path": "/about"},
                     env={"LIT_SHUTDOWN_API_KEY": "k"})
    with serve_ready(started) as s:
        yield s


@pytest.fixture(scope="module")
def doc(server: Server) -> dict[str, Any]:
    r = httpx.get(server.url + "/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    return r.json()


def test_the_document_is_valid_openapi_3(doc):
    assert doc["openapi"].startswith("3.")
    validate(doc)


def test_every_route_is_in_the_document(doc):
    paths = doc["paths"]
    assert set(paths["/predict"]) == {"post"}
    assert set(paths["/typed"]) == {"post"}
    assert set(paths["/stream"]) == {"post"}
    assert set(paths["/v1/chat/completions"]) == {"post"}
    assert set(paths["/v1/models"]) == {"get"}
    assert set(paths["/health"]) == {"get"}
    assert set(paths["/about"]) == {"get"}  # the custom info_path
    assert set(paths["/shutdown"]) == {"post"}
    assert paths["/shutdown"]["post"]["security"] == [{"shutdownKey": []}]


def test_a_predict_route_lists_every_body_it_takes_and_the_tensor_headers(doc):
    op = doc["paths"]["/predict"]["post"]
    content = op["requestBody"]["content"]
    assert set(content) == {"application/json", wire.OCTET, wire.NPY, wire.BUNDLE,
                            "multipart/form-data", "application/x-www-form-urlencoded"}
    assert content[wire.OCTET]["schema"]["format"] == "binary"
    assert {p["name"] for p in op["parameters"]} == {"X-Tensor-Dtype", "X-Tensor-Shape"}
    answers = op["responses"]["200"]["content"]
    assert set(answers) == {"application/json", *wire.TENSOR_TYPES}  # what Accept may ask


def test_a_pydantic_route_has_its_model_schema_and_takes_json_only(doc):
    content = doc["paths"]["/typed"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json"}
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Order"}
    order = doc["components"]["schemas"]["Order"]
    assert set(order["properties"]) == {"item", "quantity"}
    assert set(order["required"]) == {"item", "quantity"}


def test_a_spec_route_has_the_spec_request_model(doc):
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    assert name == "ChatCompletionRequest"
    assert "messages" in doc["components"]["schemas"][name]["properties"]


def test_docs_serves_swagger_ui_that_loads_the_document(server):
    r = httpx.get(server.url + "/docs", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in r.text and '"/openapi.json"' in r.text
    assert httpx.post(server.url + "/docs", timeout=10).status_code == 405
