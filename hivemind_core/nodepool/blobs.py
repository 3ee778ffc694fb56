"""Content-addressed blob store: ``<dir>/ab/abcdef…`` named by the sha256 of the bytes.

Writes go to a temp file in the store, are hashed on the way, verified against
the digest the sender claims, and renamed into place: a reader never sees a
partial blob, and a blob's name always matches its content. Identical content
is stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from hivemind_core.errors import HiveMindError, NotFoundError

CHUNK_SIZE = 1024 * 1024  # never more than 1 MiB per gRPC message
_SHA = re.compile(r"^[0-9a-f]{64}$")


class BlobIntegrityError(HiveMindError):
    """The bytes received do not hash to the digest the sender gave."""


class InvalidBlobId(HiveMindError):
    """Not a sha256 hex digest."""


def check_sha(sha: str) -> str:
    if not _SHA.match(sha or ""):
        raise InvalidBlobId(f"{sha!r} is not a blob id (a lowercase sha256 hex digest)")
    return sha


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(exist_ok=True)

    def path(self, sha: str) -> Path:
        check_sha(sha)
        return self.root / sha[:2] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()

    def size(self, sha: str) -> int:
        try:
            return self.path(sha).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {sha} does not exist in the node pool") from None

    def put_stream(self, chunks: Iterable[bytes], expected_sha: str | None = None,
                   durable: bool = True) -> tuple[str, int]:
        """Store the concatenated ``chunks``; return (sha256, size).

        ``expected_sha`` may also be a callable returning it after the stream
        ends (the sender may name the digest in its last chunk).
        """
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            sha = digest.hexdigest()
            claimed = expected_sha() if callable(expected_sha) else expected_sha
            if claimed and claimed != sha:
                raise BlobIntegrityError(
                    f"blob content hashes to {sha} but the sender said {claimed}: "
                    "the upload was corrupted; send it again"
                )
            target = self.path(sha)
            if target.exists():
                os.unlink(tmp)
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)
            return sha, size
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def put_bytes(self, data: bytes, durable: bool = False) -> str:
        """Store small bytes (inline results). Not fsynced by default: like the
        database (synchronous=NORMAL) it survives a process crash, and the
        result is only acknowledged once the database row naming it commits."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.path(sha).exists():
            self.put_stream([data], sha, durable=durable)
        return sha

    def open_chunks(self, sha: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The blob's bytes in chunks of at most ``chunk_size``; NotFoundError if absent."""
        try:
            fh = open(self.path(sha), "rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {sha} does not exist in the node pool") from None
        return _read_chunks(fh, chunk_size)

    def read(self, sha: str) -> bytes:
        return b"".join(self.open_chunks(sha))

    def delete(self, sha: str) -> bool:
        try:
            self.path(sha).unlink()
            return True
        except FileNotFoundError:
            return False

    def clean_tmp(self) -> None:
        """Remove half-written uploads left by a crash."""
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)


def _read_chunks(fh, chunk_size: int) -> Iterator[bytes]:  # noqa: ANN001 - a binary file
    with fh:
        while chunk := fh.read(chunk_size):
            yield chunk
