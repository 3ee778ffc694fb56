"""Turn HiveMind errors raised by the store into gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import grpc

from hivemind_core.errors import HiveMindError, NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.nodepool.blobs import BlobIntegrityError, InvalidBlobId
from hivemind_core.nodepool.store import NoNodeCanRunError, PoolShuttingDown, UnknownNodeError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)

_CODES: list[tuple[type[HiveMindError], grpc.StatusCode]] = [
    (PoolShuttingDown, grpc.StatusCode.UNAVAILABLE),
    (UnknownNodeError, grpc.StatusCode.UNAUTHENTICATED),  # the worker must register again
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (BlobIntegrityError, grpc.StatusCode.DATA_LOSS),
    (InvalidBlobId, grpc.StatusCode.INVALID_ARGUMENT),
    (NoNodeCanRunError, grpc.StatusCode.FAILED_PRECONDITION),
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (HiveMindError, grpc.StatusCode.FAILED_PRECONDITION),
]


def status_code_for(exc: HiveMindError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def grpc_errors(method: F) -> F:
    """Abort the RPC with the matching code and the error's message."""

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):  # noqa: ANN001, ANN202
        try:
            return method(self, request, context)
        except HiveMindError as exc:
            log.info("%s refused: %s", method.__name__, exc)
            context.abort(status_code_for(exc), str(exc))

    return wrapper  # type: ignore[return-value]
