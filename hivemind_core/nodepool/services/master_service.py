"""MasterNodeService: the master submits, follows, cancels and deletes work."""

from __future__ import annotations

import grpc

from hivemind_core.nodepool.blobs import BlobStore
from hivemind_core.nodepool.services.errors import grpc_errors
from hivemind_core.nodepool.store import Store, SubtaskSpec
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.proto import nodepool_pb2_grpc as pb_grpc


def _spec(m: pb.SubtaskSpec) -> SubtaskSpec:
    return SubtaskSpec(subtask_id=m.subtask_id, task_id=m.task_id, operation=m.operation, params=m.params,
                       input_blob=m.input_blob, priority=m.priority, max_attempts=m.max_attempts,
                       cores=m.cores, memory_mb=m.memory_mb, timeout_s=m.timeout_s)


class MasterNodeServiceServicer(pb_grpc.MasterNodeServiceServicer):
    def __init__(self, store: Store, blobs: BlobStore) -> None:
        self.store, self.blobs = store, blobs

    @grpc_errors
    def Submit(self, request: pb.SubmitRequest, context: grpc.ServicerContext) -> pb.SubmitReply:
        for m in request.subtasks:
            if m.input_blob and not self.blobs.exists(m.input_blob):
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"subtask {m.subtask_id}: input blob {m.input_blob} was never put; put it first")
        created, existing = self.store.submit([_spec(m) for m in request.subtasks], self.store.now())
        return pb.SubmitReply(created=created, existing=existing)

    @grpc_errors
    def Status(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> pb.StatusReply:
        return pb.StatusReply(subtasks=[
            pb.SubtaskState(**{k: (v if v is not None else 0) for k, v in row.items()})
            for row in self.store.status(request.task_id)])

    @grpc_errors
    def ListTasks(self, request: pb.ListTasksRequest, context: grpc.ServicerContext) -> pb.ListTasksReply:
        return pb.ListTasksReply(tasks=[
            pb.TaskSummary(task_id=task_id, total=sum(counts.values()), counts=counts)
            for task_id, counts in self.store.list_tasks().items()])

    @grpc_errors
    def Summary(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> pb.TaskSummary:
        counts = self.store.summary(request.task_id)
        return pb.TaskSummary(task_id=request.task_id, total=sum(counts.values()), counts=counts)

    @grpc_errors
    def Cancel(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> pb.CancelReply:
        return pb.CancelReply(cancelled=self.store.cancel(request.task_id, self.store.now()))

    @grpc_errors
    def Results(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> pb.ResultsReply:
        return pb.ResultsReply(results=self.store.results(request.task_id))

    @grpc_errors
    def DeleteTask(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> pb.DeleteTaskReply:
        count, orphaned = self.store.delete_task(request.task_id)
        removed = sum(self.blobs.delete(sha) for sha in orphaned)
        return pb.DeleteTaskReply(subtasks=count, blobs=removed)
