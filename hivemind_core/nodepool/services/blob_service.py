"""BlobService: streamed put/get in chunks of at most 1 MiB, verified by sha256."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from hivemind_core.errors import HiveMindError
from hivemind_core.nodepool.blobs import CHUNK_SIZE, BlobStore
from hivemind_core.nodepool.services.errors import grpc_errors, status_code_for
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.proto import nodepool_pb2_grpc as pb_grpc


class BlobServiceServicer(pb_grpc.BlobServiceServicer):
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    @grpc_errors
    def Put(self, request_iterator: Iterator[pb.BlobChunk], context: grpc.ServicerContext) -> pb.BlobRef:
        claimed: list[str] = []

        def data() -> Iterator[bytes]:
            for chunk in request_iterator:
                if len(chunk.data) > CHUNK_SIZE:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"blob chunks must be at most {CHUNK_SIZE} bytes, got {len(chunk.data)}")
                if chunk.sha256:
                    claimed.append(chunk.sha256)
                yield chunk.data

        sha, size = self.blobs.put_stream(data(), expected_sha=lambda: claimed[-1] if claimed else None)
        return pb.BlobRef(sha256=sha, size=size)

    def Get(self, request: pb.BlobRef, context: grpc.ServicerContext) -> Iterator[pb.BlobChunk]:
        try:
            chunks = self.blobs.open_chunks(request.sha256)
        except HiveMindError as exc:  # unknown blob, malformed id
            context.abort(status_code_for(exc), str(exc))
        for data in chunks:
            yield pb.BlobChunk(data=data)
