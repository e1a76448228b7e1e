"""The HTTP surface: one port answers the control plane, the runtime and the events API.

Control plane: AWS JSON 1.1, ``POST /`` with ``X-Amz-Target: AmazonPersonalize.<Op>``.
Runtime and events: REST-JSON, ``POST /recommendations`` and friends (spec §1.3).
Every request is validated against botocore's model of its operation before a
handler runs, and every error goes out in the form botocore parses.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pertinent import ids
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
from pertinent.resources.actions import put_action_interactions, put_actions
from pertinent.resources.events import EventsService, put_events, put_items, put_users
from pertinent.resources.runtime import Runtime, get_personalized_ranking, get_recommendations
from pertinent.serving.balance import Balancer
from pertinent.store.catalog import Catalog
from pertinent.store.eventlog import GroupCommitWriter

log = logging.getLogger("pertinent.api")


TARGET_PREFIX = "AmazonPersonalize."
JSON_11 = "application/x-amz-json-1.1"


class Services:
    """What every request handler needs, built once per process."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.catalog_url)
        self.runtime = Runtime()
        self.events = EventsService(GroupCommitWriter(self.catalog))

    def context_for(self, authorization: str) -> Context:
        account, region = identify(authorization, self.settings)
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
    request_id = ids.request_id()
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
        ctx = services.context_for(request.headers.get("authorization", ""))
        result = await run_in_threadpool(handler, ctx, params)
        body = orjson.dumps(shape_output(op.output_shape, result))
        return Response(body, media_type=JSON_11, headers={"x-amzn-RequestId": request_id})
    except PertinentError as exc:
        return _error(exc, "personalize", request_id)
    except Exception:
        log.exception("control plane request failed")
        return _internal("personalize", request_id)


# REST-JSON routes of the runtime and events services: path -> (model, operation, handler).
@dataclass(frozen=True)
class RestRoute:
    """A REST-JSON operation: its model, its handler and what the handler is handed."""

    service: str
    operation: str
    handler: Callable[..., Any]
    uses: str  # "runtime" or "events": the Services attribute passed to the handler

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


RUNTIME = "personalize-runtime"
EVENTS = "personalize-events"
REST_ROUTES: dict[str, RestRoute] = {
    "/recommendations": RestRoute(RUNTIME, "GetRecommendations", get_recommendations, "runtime"),
    "/personalize-ranking": RestRoute(
        RUNTIME, "GetPersonalizedRanking", get_personalized_ranking, "runtime"
    ),
    "/events": RestRoute(EVENTS, "PutEvents", put_events, "events"),
    "/items": RestRoute(EVENTS, "PutItems", put_items, "events"),
    "/users": RestRoute(EVENTS, "PutUsers", put_users, "events"),
    "/actions": RestRoute(EVENTS, "PutActions", put_actions, "events"),
    "/action-interactions": RestRoute(
        EVENTS, "PutActionInteractions", put_action_interactions, "events"
    ),
}


def _json_response(status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ],
    }


async def _read_body(receive: Callable[[], Any]) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class App:
    """The ASGI application: the REST hot path first, everything else through Starlette.

    Runtime and events requests skip Starlette's router and middleware stack: they are
    answered straight from ASGI messages on the event loop, because the work is short
    array math on a cached model and the framework would cost more than the answer.
    """

    def __init__(self, services: Services, fallback: Starlette) -> None:
        self.services = services
        self.fallback = fallback
        self.state = fallback.state
        self.balancer: Balancer | None = None  # set where several processes share the port

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = REST_ROUTES.get(scope["path"])
            if route is not None:
                await self.rest(route, scope, receive, send)
                return
        await self.fallback(scope, receive, send)

    async def rest(self, route: RestRoute, scope: Any, receive: Any, send: Any) -> None:
        request_id = ids.request_id()
        authorization = ""
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        extra = [(b"x-amzn-requestid", request_id.encode())]
        try:
            op = operation(route.service, route.operation)
            params = validate(op, _parse_body(await _read_body(receive)))
            ctx = self.services.context_for(authorization)
            dependency = getattr(self.services, route.uses)
            # Handlers build the exact wire shape, so no projection on the hot path.
            if route.is_async:
                result = await route.handler(ctx, dependency, params)
            else:
                result = route.handler(ctx, dependency, params)
            body = orjson.dumps(result)
            status = 200
        except PertinentError as exc:
            body = orjson.dumps({"__type": exc.code, "message": exc.message})
            status = exc.status_for(route.service)
            extra.append((b"x-amzn-errortype", exc.code.encode()))
        except Exception:
            log.exception("%s request failed", route.operation)
            body = b'{"__type":"InternalFailure","message":"Internal server error."}'
            status = 500
            extra.append((b"x-amzn-errortype", b"InternalFailure"))
        if self.balancer is not None and self._rebalance(scope.get("client")):
            extra.append((b"connection", b"close"))
        await send(_json_response(status, body, extra))
        await send({"type": "http.response.body", "body": body})

    def _rebalance(self, client: Any) -> bool:
        assert self.balancer is not None
        try:
            return self.balancer.should_close(client)
        except Exception:  # the answer matters more than the balance
            log.exception("keep-alive balancing failed")
            return False


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(settings: Settings, catalog: Catalog | None = None) -> App:
    services = Services(settings, catalog)
    routes = [
        Route("/", control_plane, methods=["POST"]),
        Route("/ping", health, methods=["GET"]),
    ]
    fallback = Starlette(routes=routes)
    fallback.state.services = services
    return App(services, fallback)
