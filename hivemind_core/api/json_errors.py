"""Every error answer on the API's paths is JSON ``{"error", "status"}``.

Our handlers answer in JSON themselves (``common.endpoint``), but some answers
never reach them: Streamlit's path-security middleware refuses a path such as
``/api/tasks/..%2F..%2Fetc`` with a plain-text ``400 Bad Request`` before any
route runs, and Starlette answers an unexpected exception with a plain-text 500.
This middleware sits outside both (``st.App(middleware=...)`` runs before
Streamlit's own) and, on ``/api`` and ``/health`` only, turns such a plain answer
into the API's JSON error. The UI's paths are left alone.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from streamlit.path_security import is_unsafe_path_pattern

from hivemind_core.api.common import json_error

log = logging.getLogger(__name__)


def is_api_path(path: str) -> bool:
    """The paths the REST API owns (see ``routes.ROUTES``)."""
    return path in ("/health", "/api") or path.startswith(("/health/", "/api/"))


def error_message(status: int, method: str, path: str, text: str) -> str:
    """Words for a plain error answer someone else gave on an API path."""
    if status == 400 and is_unsafe_path_pattern(path.lstrip("/")):
        return (f"{method} {path}: the path is refused (it contains '..', a backslash, an encoded slash or a "
                "drive letter); task ids are plain letters and digits.")
    if status >= 500:
        return "Internal error; the server log has the details."
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    detail = text.strip()
    return f"{phrase}: {detail}" if detail and detail != phrase else f"{phrase} ({method} {path})."


class JsonErrorsMiddleware:
    """ASGI middleware: a non-JSON error answer (status >= 400) on an API path becomes JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method", "GET"), scope.get("path", "")
        held: Message | None = None   # the start of a plain error answer, until its body is in
        body = bytearray()
        started = False

        async def send_json_instead(status: int, text: str) -> None:
            response = json_error(status, error_message(status, method, path, text))
            await response(scope, receive, send)

        async def wrapped_send(message: Message) -> None:
            nonlocal held, started
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=message["headers"])
                plain = (message["status"] >= 400 and "json" not in headers.get("content-type", "")
                         and "content-encoding" not in headers)
                if plain:
                    held = message
                    return
                started = True
                await send(message)
            elif message["type"] == "http.response.body" and held is not None:
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    started = True
                    await send_json_instead(held["status"], body.decode("utf-8", "replace"))
            else:
                await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
        except Exception:  # noqa: BLE001 - an API client gets a JSON 500, the log gets the traceback
            log.exception("%s %s failed", method, path)
            if started:
                raise
            await send_json_instead(500, "")
