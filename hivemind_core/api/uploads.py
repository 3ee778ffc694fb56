"""Multipart uploads with a size limit enforced while the body streams in
(a client that lies about, or omits, Content-Length still gets a 413)."""

from __future__ import annotations

from contextlib import aclosing

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import Message, Receive

from hivemind_core.api.common import PayloadTooLargeError
from hivemind_core.errors import ValidationError
from hivemind_core.units import fmt_mib

MULTIPART_OVERHEAD = 64 * 1024  # headers and the spec part on top of the data file
WHAT_TO_SEND = "send one 'spec' part (JSON) and one 'data' file part (curl: -F spec=@spec.json -F data=@file.csv)"


def _too_large(limit_mb: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The upload is larger than the limit of {fmt_mib(limit_mb)} (HIVEMIND_MAX_UPLOAD_MB={limit_mb}); "
        "split the data or ask an administrator to raise the limit."
    )


class _CountingReceive:
    def __init__(self, receive: Receive, limit: int, limit_mb: int) -> None:
        self._receive, self._limit, self._limit_mb, self.received = receive, limit, limit_mb, 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit:
                raise _too_large(self._limit_mb)
        return message


async def read_form(request: Request, limit_mb: int) -> FormData:
    """Parse a multipart form, refusing bodies over ``limit_mb`` MiB (+ a little for the other parts)."""
    limit = limit_mb * 1024 * 1024 + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit_mb)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ValidationError("Send the job as multipart/form-data with a 'spec' part and a 'data' file part.",
                              field="content-type")
    limited = Request(request.scope, _CountingReceive(request.receive, limit, limit_mb))
    # the parser itself, not Request.form(), which turns its errors into a plain-text HTTPException
    try:
        async with aclosing(limited.stream()) as stream:
            form = await MultiPartParser(limited.headers, stream, max_files=2, max_fields=10).parse()
    except MultiPartException as exc:   # garbage, no boundary, a third file, a nameless part, ...
        raise ValidationError(f"The request is not a valid job upload ({exc.message.rstrip('.')}): "
                              f"{WHAT_TO_SEND}.") from None
    repeated = sorted({name for name, _ in form.multi_items() if len(form.getlist(name)) > 1})
    if repeated:
        await form.close()
        raise ValidationError(f"The request has more than one {' and '.join(map(repr, repeated))} part: "
                              f"{WHAT_TO_SEND}.", field=repeated[0])
    return form


async def form_text(form: FormData, name: str) -> str:
    """A form part as text, whether it was sent as a field or as a file."""
    value = form.get(name)
    if value is None:
        raise ValidationError(f"The request has no '{name}' part.", field=name)
    if isinstance(value, UploadFile):
        raw = await value.read()
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError(f"The '{name}' part is not UTF-8 text.", field=name) from None
    return str(value)
