"""Who may call what on the node pool.

Three kinds of token, sent as ``authorization: Bearer <token>`` metadata:

* the **cluster** token — ``HIVEMIND_CLUSTER_TOKEN``, else generated once
  (mode 0600) into the pool's data dir; the master and operators hold it, and
  a worker shows it once to register;
* **client** tokens issued by ``UserManager.CreateToken`` (stored hashed);
* **node** tokens, one per worker, issued by ``NodeManager.Register``.

A missing or unknown token gets ``UNAUTHENTICATED``; a valid token calling a
method its kind may not use gets ``PERMISSION_DENIED``. The standard
``grpc.health.v1`` service needs no token.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from hivemind_core.nodepool.store import Store, hash_token
from hivemind_core.secrets_store import get_or_create_secret

METADATA_KEY = "authorization"
CLUSTER_TOKEN_ENV = "HIVEMIND_CLUSTER_TOKEN"
CLUSTER_TOKEN_SECRET = "cluster_token"
HEALTH_PREFIX = "/grpc.health.v1.Health/"
_PACKAGE = "/hivemind.nodepool.v1."

CLUSTER, CLIENT, NODE = "cluster", "client", "node"
_ANY = frozenset({CLUSTER, CLIENT, NODE})
_MASTER = frozenset({CLUSTER, CLIENT})

# service -> kinds allowed; per-method overrides below
_SERVICE_KINDS: dict[str, frozenset[str]] = {
    "NodeManager": _MASTER,
    "UserManager": frozenset({CLUSTER}),
    "MasterNodeService": _MASTER,
    "WorkerService": frozenset({NODE}),
    "BlobService": _ANY,
}
_METHOD_KINDS: dict[str, frozenset[str]] = {
    "NodeManager/Register": frozenset({CLUSTER}),
    "NodeManager/Heartbeat": frozenset({NODE}),
    "UserManager/WhoAmI": _ANY,
}


@dataclass(frozen=True)
class Caller:
    kind: str      # cluster | client | node
    name: str
    node_id: str = ""


def cluster_token_for(data_dir: Path) -> str:
    """The cluster token: ``HIVEMIND_CLUSTER_TOKEN`` if set, else the one generated
    into ``data_dir`` on first start (mode 0600)."""
    from_env = os.environ.get(CLUSTER_TOKEN_ENV, "").strip()
    return from_env or get_or_create_secret(Path(data_dir), CLUSTER_TOKEN_SECRET)


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying ``token``."""
    return ((METADATA_KEY, f"Bearer {token}"),)


def _token_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == METADATA_KEY:
            value = value.decode() if isinstance(value, bytes) else value
            return value[7:].strip() if value.lower().startswith("bearer ") else value.strip()
    return ""


def allowed_kinds(method: str) -> frozenset[str]:
    """Kinds of caller allowed to call the full gRPC ``method`` name (empty: nobody)."""
    if not method.startswith(_PACKAGE):
        return frozenset()
    short = method[len(_PACKAGE):]
    if short in _METHOD_KINDS:
        return _METHOD_KINDS[short]
    return _SERVICE_KINDS.get(short.split("/", 1)[0], frozenset())


class Authenticator:
    """Maps tokens to callers; node and client tokens are cached by hash."""

    def __init__(self, cluster_token: str, store: Store) -> None:
        if not cluster_token:
            raise ValueError("the node pool needs a cluster token")
        self._cluster = cluster_token.encode()
        self._store = store
        self._lock = threading.Lock()
        self._known: dict[str, Caller] = {}
        self.refresh()

    def refresh(self) -> None:
        """Reload node and client tokens from the store (after register/revoke)."""
        known = {h: Caller(NODE, name, node_id) for h, (node_id, name) in self._store.node_token_hashes().items()}
        known.update((t["token_hash"], Caller(CLIENT, t["name"])) for t in self._store.client_tokens())
        with self._lock:
            self._known = known

    def identify(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller | None:
        token = _token_from(metadata)
        if not token:
            return None
        if hmac.compare_digest(token.encode(), self._cluster):
            return Caller(CLUSTER, "cluster")
        with self._lock:
            return self._known.get(hash_token(token))


def _aborting(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that fails with ``code``."""

    def abort(_request, context: grpc.ServicerContext):  # noqa: ANN001, ANN202
        context.abort(code, message)

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort, **kwargs)
    return grpc.unary_unary_rpc_method_handler(abort, **kwargs)


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIX):
            return handler
        caller = self.authenticator.identify(details.invocation_metadata)
        if caller is None:
            return _aborting(handler, grpc.StatusCode.UNAUTHENTICATED,
                             "missing or invalid token: pass the cluster token (or a token issued by the "
                             "node pool) as 'authorization: Bearer <token>'")
        if caller.kind not in allowed_kinds(details.method):
            return _aborting(handler, grpc.StatusCode.PERMISSION_DENIED,
                             f"a {caller.kind} token may not call {details.method}")
        return handler


def caller_of(authenticator: Authenticator, context: grpc.ServicerContext) -> Caller:
    """The caller of the current RPC (the interceptor has already let it in)."""
    caller = authenticator.identify(context.invocation_metadata())
    if caller is None:  # revoked between the interceptor and here
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "token no longer valid")
    return caller
