"""Plumbing shared by the REST handlers: bearer-token auth, JSON errors with
the right status codes, running blocking core calls off the event loop."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hivemind_core.auth import AuthenticationError, principal_for_token
from hivemind_core.client import NodePoolUnavailable
from hivemind_core.errors import ConflictError, HiveMindError, NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.principal import Principal
from hivemind_core.runtime import MasterRuntime, current_runtime

log = logging.getLogger(__name__)
T = TypeVar("T")


class PayloadTooLargeError(HiveMindError):
    """The request body is over the upload limit."""


class ServiceUnavailableError(HiveMindError):
    """The master is starting or stopping; its services are not there."""


def _status_for(exc: HiveMindError) -> int:
    if isinstance(exc, AuthenticationError):
        return 401
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, PayloadTooLargeError):
        return 413
    if isinstance(exc, (ServiceUnavailableError, NodePoolUnavailable)):
        return 503
    return 400  # ValidationError and every other error meant for the user


def json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="hivemind"'} if status == 401 else None
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status, headers=headers)


def error_response(exc: HiveMindError) -> JSONResponse:
    extra = {"field": exc.field} if isinstance(exc, ValidationError) and exc.field else {}
    return json_error(_status_for(exc), str(exc), **extra)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking core call (SQLite, gRPC, files) in a worker thread."""
    return await run_in_threadpool(fn, *args, **kwargs)


def runtime() -> MasterRuntime:
    rt = current_runtime()
    if rt is None:
        raise ServiceUnavailableError("The master is not running its services (starting up or shutting down).")
    return rt


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <token>`` (AuthenticationError → 401)."""
    return await blocking(principal_for_token, bearer_token(request))


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(fn: Handler) -> Handler:
    """Turn HiveMindErrors into JSON errors and anything unexpected into a logged 500."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except HiveMindError as exc:
            return error_response(exc)
        except Exception:  # noqa: BLE001 - the client gets a JSON 500, the log gets the traceback
            log.exception("%s %s failed", request.method, request.url.path)
            return json_error(500, "Internal error; the server log has the details.")

    return wrapper


def jsonable(value: Any) -> Any:
    """Models, dataclasses, datetimes (ISO 8601 with zone) and NaNs (null) as plain JSON values."""
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):  # naive datetimes are UTC (the master's convention)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def int_param(request: Request, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"Query parameter {name!r} must be a whole number, got {raw!r}.", field=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ValidationError(f"Query parameter {name!r} must be at least {minimum}{upper}.", field=name)
    return value
