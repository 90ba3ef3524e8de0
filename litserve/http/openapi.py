"""``/openapi.json`` and ``/docs``: the server's routes as an OpenAPI 3.1 document, and a
Swagger UI page that loads it (the page fetches Swagger UI's assets from a CDN, as
FastAPI's does).

The document is built once per front at start, from the plan and the LitAPIs: each
predict route with every body it takes (JSON, validated against the pydantic model of
``decode_request`` when it has one; raw tensors with their ``X-Tensor-*`` headers;
``.npy``; tensor bundles; forms) and every binary answer ``Accept`` can ask for; each
spec endpoint with its request model; ``/health``, ``/info`` and the shutdown route.
``LitServer(disable_openapi_url=True)`` serves neither.
"""

from __future__ import annotations

from typing import Any

from .. import wire
from ..api import request_model
from ..config import Plan

OPENAPI_PATH, DOCS_PATH = "/openapi.json", "/docs"
Doc = dict[str, Any]
_BINARY = {"type": "string", "format": "binary"}
_TENSOR_HEADERS = [
    {"name": "X-Tensor-Dtype", "in": "header", "required": False,
     "description": "with application/octet-stream: the NumPy dtype of the body "
                    "(float32, uint8, <f4, ...); required for that content type",
     "schema": {"type": "string", "example": "float32"}},
    {"name": "X-Tensor-Shape", "in": "header", "required": False,
     "description": "with application/octet-stream: comma-separated dims (1080,1920,3); "
                    "empty for a 0-d array, absent for 1-D",
     "schema": {"type": "string", "example": "2,3"}},
]
_ERRORS = {"400": "malformed body or headers", "413": "body over max_payload_size",
           "415": "content type this route does not take", "422": "body fails validation",
           "503": "server busy (Retry-After says when to come back)",
           "504": "request timed out"}


def document(plan: Plan, apis: list[Any], specs: list[Any]) -> Doc:
    """The OpenAPI document of a server with ``apis`` (and their ``specs``)."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for i, (api, spec) in enumerate(zip(apis, specs, strict=True)):
        name = type(api).__name__
        if spec is None:
            path = plan.routes[i].api_path
            paths[path] = {"post": _predict(api, name, path, plan.routes[i].stream, schemas)}
        else:
            for ep in spec.endpoints():
                ops = paths.setdefault(ep.path, {})
                for method in ep.methods:
                    ops[method.lower()] = _spec_op(spec, ep.path, method, name, schemas)
    paths[plan.healthcheck_path] = {"get": _plain(
        "health", "200 `ok` once every worker is set up and can serve, else 503 `not ready`",
        "text/plain")}
    paths[plan.info_path] = {"get": _plain(
        "info", "the model metadata and the server's configuration", "application/json")}
    doc: Doc = {"openapi": "3.1.0",
                "info": {"title": "LitServe", "version": _version()},
                "paths": paths}
    security: dict[str, Any] = {}
    if plan.enable_shutdown_api:
        paths[plan.shutdown_path] = {"post": _shutdown()}
        security["shutdownKey"] = {"type": "http", "scheme": "bearer"}
    if plan.api_key:
        security["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        doc["security"] = [{"apiKey": []}]
    components: dict[str, Any] = {}
    if schemas:
        components["schemas"] = schemas
    if security:
        components["securitySchemes"] = security
    if components:
        doc["components"] = components
    return doc


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("litserve")
    except Exception:
        return "0"


def _ref(model: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """A ``$ref`` to ``model``'s schema, which (with its definitions) joins ``schemas``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _predict(api: Any, name: str, path: str, stream: bool, schemas: dict[str, Any]) -> Doc:
    model = request_model(api)
    json_schema = _ref(model, schemas) if model is not None else {
        "type": "object", "description": "any JSON value; decode_request receives it parsed"}
    content: dict[str, Any] = {"application/json": {"schema": json_schema}}
    if model is None:  # a pydantic route takes JSON only (415 otherwise)
        content.update({
            wire.OCTET: {"schema": {**_BINARY, "description": "an array's bytes, C order "
                                                              "(see the X-Tensor headers)"}},
            wire.NPY: {"schema": {**_BINARY, "description": "a NumPy .npy file"}},
            wire.BUNDLE: {"schema": {**_BINARY, "description": "several named arrays (a "
                                                               "litserve tensor bundle)"}},
            "multipart/form-data": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        })
    answers: dict[str, Any] = (
        {"application/x-ndjson": {"schema": {"type": "string"}},
         "text/plain": {"schema": {"type": "string"}}} if stream else
        {"application/json": {"schema": {}}, **{t: {"schema": _BINARY}
                                                 for t in wire.TENSOR_TYPES}})
    op: Doc = {
        "summary": f"{name}: predict", "operationId": f"post_{_slug(path)}",
        "requestBody": {"required": True, "content": content},
        "responses": {"200": {"description": "encode_response's output (a stream of chunks "
                                             "when streaming; a binary tensor when Accept "
                                             "asks for one)", "content": answers},
                      **{code: {"description": why} for code, why in _ERRORS.items()}},
    }
    if model is None:
        op["parameters"] = _TENSOR_HEADERS
    return op


def _spec_op(spec: Any, path: str, method: str, name: str, schemas: dict[str, Any]) -> Doc:
    op: Doc = {"summary": f"{name}: {type(spec).__name__} {method} {path}",
               "operationId": f"{method.lower()}_{_slug(path)}",
               "responses": {"200": {"description": "the spec's answer",
                                     "content": {"application/json": {"schema": {}}}},
                             **{code: {"description": why} for code, why in _ERRORS.items()}}}
    model = getattr(spec, "request_model", None)
    if method == "POST" and model is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": _ref(model, schemas)}}}
    return op


def _plain(name: str, what: str, ctype: str) -> Doc:
    return {"summary": name, "operationId": name,
            "responses": {"200": {"description": what, "content": {ctype: {"schema": {}}}}}}


def _shutdown() -> Doc:
    return {"summary": "shutdown", "operationId": "shutdown",
            "description": "Stops the whole server gracefully (LitServer(enable_shutdown_api"
                           "=True)); send Authorization: Bearer <LIT_SHUTDOWN_API_KEY>",
            "security": [{"shutdownKey": []}],
            "responses": {"200": {"description": "the server is shutting down"},
                          "401": {"description": "missing or wrong shutdown key"}}}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


SWAGGER_UI = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "{url}", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout"}});
</script>
</body>
</html>
"""


def docs_page(title: str = "LitServe", url: str = OPENAPI_PATH) -> bytes:
    """The Swagger UI page for the document at ``url``."""
    return SWAGGER_UI.format(title=title, url=url).encode()
