"""The HTTP surface: one port answers the control plane, the runtime and the events API.

Control plane: AWS JSON 1.1, ``POST /`` with ``X-Amz-Target: AmazonPersonalize.<Op>``.
Runtime and events: REST-JSON, ``POST /recommendations`` and friends (spec §1.3).
Every request is validated against botocore's model of its operation before a
handler runs, and every error goes out in the form botocore parses.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pertinent.api.auth import identify
from pertinent.api.protocol import operation, shape_output, validate
from pertinent.config import Settings
from pertinent.errors import (
    InvalidInputException,
    PertinentError,
    SerializationException,
    UnknownOperationException,
)
from pertinent.resources import OPERATIONS
from pertinent.resources._common import Context
from pertinent.resources.runtime import Runtime, get_recommendations
from pertinent.store.catalog import Catalog

log = logging.getLogger("pertinent.api")

TARGET_PREFIX = "AmazonPersonalize."
JSON_11 = "application/x-amz-json-1.1"
RuntimeHandler = Callable[[Context, Runtime, dict[str, Any]], dict[str, Any]]


class Services:
    """What every request handler needs, built once per process."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.catalog_url)
        self.runtime = Runtime()

    def context(self, request: Request) -> Context:
        account, region = identify(request.headers, self.settings)
        return Context(
            settings=self.settings, catalog=self.catalog, account_id=account, region=region
        )


def _error(exc: PertinentError, service: str, request_id: str) -> Response:
    body = orjson.dumps({"__type": exc.code, "message": exc.message})
    headers = {"x-amzn-RequestId": request_id}
    if service == "personalize":
        media = JSON_11
    else:
        media = "application/json"
        headers["x-amzn-ErrorType"] = exc.code
    return Response(body, status_code=exc.status_for(service), media_type=media, headers=headers)


def _internal(service: str, request_id: str) -> Response:
    body = orjson.dumps({"__type": "InternalFailure", "message": "Internal server error."})
    headers = {"x-amzn-RequestId": request_id}
    if service != "personalize":
        headers["x-amzn-ErrorType"] = "InternalFailure"
    return Response(body, status_code=500, media_type="application/json", headers=headers)


def _parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SerializationException(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise SerializationException("The request body must be a JSON object.")
    return body


async def control_plane(request: Request) -> Response:
    services: Services = request.app.state.services
    request_id = str(uuid.uuid4())
    try:
        target = request.headers.get("x-amz-target", "")
        if not target.startswith(TARGET_PREFIX):
            raise UnknownOperationException(
                "Missing or unknown X-Amz-Target header; expected AmazonPersonalize.<Operation>."
            )
        name = target[len(TARGET_PREFIX) :]
        handler = OPERATIONS.get(name)
        try:
            op = operation("personalize", name)
        except Exception:
            raise UnknownOperationException(f"Unknown operation {name}.") from None
        if handler is None:
            raise InvalidInputException(
                f"The operation {name} is not supported by this version of Pertinent."
            )
        params = validate(op, _parse_body(await request.body()))
        ctx = services.context(request)
        result = await run_in_threadpool(handler, ctx, params)
        body = orjson.dumps(shape_output(op.output_shape, result))
        return Response(body, media_type=JSON_11, headers={"x-amzn-RequestId": request_id})
    except PertinentError as exc:
        return _error(exc, "personalize", request_id)
    except Exception:
        log.exception("control plane request failed")
        return _internal("personalize", request_id)


def rest_route(service: str, op_name: str, handler: RuntimeHandler) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        request_id = str(uuid.uuid4())
        try:
            op = operation(service, op_name)
            params = validate(op, _parse_body(await request.body()))
            ctx = services.context(request)
            # Answered on the event loop: the work is short array math on a cached model,
            # and a thread hop would cost more than it saves.
            result = handler(ctx, services.runtime, params)
            body = orjson.dumps(shape_output(op.output_shape, result))
            return Response(
                body, media_type="application/json", headers={"x-amzn-RequestId": request_id}
            )
        except PertinentError as exc:
            return _error(exc, "runtime", request_id)
        except Exception:
            log.exception("%s request failed", op_name)
            return _internal("runtime", request_id)

    return endpoint


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(settings: Settings, catalog: Catalog | None = None) -> Starlette:
    services = Services(settings, catalog)
    routes = [
        Route("/", control_plane, methods=["POST"]),
        Route(
            "/recommendations",
            rest_route("personalize-runtime", "GetRecommendations", get_recommendations),
            methods=["POST"],
        ),
        Route("/ping", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.services = services
    return app
