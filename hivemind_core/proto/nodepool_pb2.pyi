from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("name", "address", "cores", "memory_mb", "gpu", "labels", "version", "slots", "node_id", "node_token", "fresh_process", "host_id")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FRESH_PROCESS_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    cores: int
    memory_mb: int
    gpu: str
    labels: _containers.ScalarMap[str, str]
    version: str
    slots: int
    node_id: str
    node_token: str
    fresh_process: bool
    host_id: str
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., cores: _Optional[int] = ..., memory_mb: _Optional[int] = ..., gpu: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., version: _Optional[str] = ..., slots: _Optional[int] = ..., node_id: _Optional[str] = ..., node_token: _Optional[str] = ..., fresh_process: _Optional[bool] = ..., host_id: _Optional[str] = ...) -> None: ...

class RegisterReply(_message.Message):
    __slots__ = ("node_id", "node_token", "heartbeat_interval_s", "lease_ttl_s", "identity")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_S_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_token: str
    heartbeat_interval_s: float
    lease_ttl_s: float
    identity: str
    def __init__(self, node_id: _Optional[str] = ..., node_token: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ..., lease_ttl_s: _Optional[float] = ..., identity: _Optional[str] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("timestamp", "cpu_percent", "memory_percent", "disk_percent", "net_in_bps", "net_out_bps", "running")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISK_PERCENT_FIELD_NUMBER: _ClassVar[int]
    NET_IN_BPS_FIELD_NUMBER: _ClassVar[int]
    NET_OUT_BPS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    timestamp: float
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    net_in_bps: float
    net_out_bps: float
    running: int
    def __init__(self, timestamp: _Optional[float] = ..., cpu_percent: _Optional[float] = ..., memory_percent: _Optional[float] = ..., disk_percent: _Optional[float] = ..., net_in_bps: _Optional[float] = ..., net_out_bps: _Optional[float] = ..., running: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: Metrics
    def __init__(self, metrics: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("heartbeat_interval_s",)
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    def __init__(self, heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class NodeListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "name", "address", "cores", "memory_mb", "gpu", "labels", "version", "status", "last_heartbeat", "running", "slots", "metrics", "registered_at", "host_id")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    name: str
    address: str
    cores: int
    memory_mb: int
    gpu: str
    labels: _containers.ScalarMap[str, str]
    version: str
    status: str
    last_heartbeat: float
    running: int
    slots: int
    metrics: Metrics
    registered_at: float
    host_id: str
    def __init__(self, node_id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., cores: _Optional[int] = ..., memory_mb: _Optional[int] = ..., gpu: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., version: _Optional[str] = ..., status: _Optional[str] = ..., last_heartbeat: _Optional[float] = ..., running: _Optional[int] = ..., slots: _Optional[int] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., registered_at: _Optional[float] = ..., host_id: _Optional[str] = ...) -> None: ...

class NodeListReply(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class NodeHistoryRequest(_message.Message):
    __slots__ = ("node_id", "since", "until")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    since: float
    until: float
    def __init__(self, node_id: _Optional[str] = ..., since: _Optional[float] = ..., until: _Optional[float] = ...) -> None: ...

class NodeHistoryReply(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Metrics]
    def __init__(self, points: _Optional[_Iterable[_Union[Metrics, _Mapping]]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateTokenReply(_message.Message):
    __slots__ = ("name", "token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    token: str
    def __init__(self, name: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevokeTokenReply(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    def __init__(self, revoked: _Optional[bool] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("name", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    created_at: float
    def __init__(self, name: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class ListTokensReply(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIReply(_message.Message):
    __slots__ = ("kind", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SubtaskSpec(_message.Message):
    __slots__ = ("subtask_id", "task_id", "operation", "params", "input_blob", "priority", "max_attempts", "cores", "memory_mb", "timeout_s")
    SUBTASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INPUT_BLOB_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    subtask_id: str
    task_id: str
    operation: str
    params: bytes
    input_blob: str
    priority: int
    max_attempts: int
    cores: float
    memory_mb: int
    timeout_s: float
    def __init__(self, subtask_id: _Optional[str] = ..., task_id: _Optional[str] = ..., operation: _Optional[str] = ..., params: _Optional[bytes] = ..., input_blob: _Optional[str] = ..., priority: _Optional[int] = ..., max_attempts: _Optional[int] = ..., cores: _Optional[float] = ..., memory_mb: _Optional[int] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("subtasks",)
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    subtasks: _containers.RepeatedCompositeFieldContainer[SubtaskSpec]
    def __init__(self, subtasks: _Optional[_Iterable[_Union[SubtaskSpec, _Mapping]]] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("created", "existing")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    created: int
    existing: int
    def __init__(self, created: _Optional[int] = ..., existing: _Optional[int] = ...) -> None: ...

class TaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class SubtaskState(_message.Message):
    __slots__ = ("subtask_id", "task_id", "state", "attempts", "node_id", "node_name", "created_at", "started_at", "finished_at", "error", "result_blob", "max_attempts", "priority", "operation")
    SUBTASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_BLOB_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    subtask_id: str
    task_id: str
    state: str
    attempts: int
    node_id: str
    node_name: str
    created_at: float
    started_at: float
    finished_at: float
    error: str
    result_blob: str
    max_attempts: int
    priority: int
    operation: str
    def __init__(self, subtask_id: _Optional[str] = ..., task_id: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., node_id: _Optional[str] = ..., node_name: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., error: _Optional[str] = ..., result_blob: _Optional[str] = ..., max_attempts: _Optional[int] = ..., priority: _Optional[int] = ..., operation: _Optional[str] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("subtasks",)
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    subtasks: _containers.RepeatedCompositeFieldContainer[SubtaskState]
    def __init__(self, subtasks: _Optional[_Iterable[_Union[SubtaskState, _Mapping]]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskSummary(_message.Message):
    __slots__ = ("task_id", "total", "counts")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    total: int
    counts: _containers.ScalarMap[str, int]
    def __init__(self, task_id: _Optional[str] = ..., total: _Optional[int] = ..., counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ListTasksReply(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSummary]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskSummary, _Mapping]]] = ...) -> None: ...

class CancelReply(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: int
    def __init__(self, cancelled: _Optional[int] = ...) -> None: ...

class ResultsReply(_message.Message):
    __slots__ = ("results",)
    class ResultsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.ScalarMap[str, str]
    def __init__(self, results: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeleteTaskReply(_message.Message):
    __slots__ = ("subtasks", "blobs")
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    subtasks: int
    blobs: int
    def __init__(self, subtasks: _Optional[int] = ..., blobs: _Optional[int] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("max", "wait_s")
    MAX_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    max: int
    wait_s: float
    def __init__(self, max: _Optional[int] = ..., wait_s: _Optional[float] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("lease_id", "subtask_id", "task_id", "operation", "params", "input_blob", "timeout_s", "memory_mb", "attempt", "expires_at")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INPUT_BLOB_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    subtask_id: str
    task_id: str
    operation: str
    params: bytes
    input_blob: str
    timeout_s: float
    memory_mb: int
    attempt: int
    expires_at: float
    def __init__(self, lease_id: _Optional[str] = ..., subtask_id: _Optional[str] = ..., task_id: _Optional[str] = ..., operation: _Optional[str] = ..., params: _Optional[bytes] = ..., input_blob: _Optional[str] = ..., timeout_s: _Optional[float] = ..., memory_mb: _Optional[int] = ..., attempt: _Optional[int] = ..., expires_at: _Optional[float] = ...) -> None: ...

class LeaseReply(_message.Message):
    __slots__ = ("leases", "lease_ttl_s")
    LEASES_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_S_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[Lease]
    lease_ttl_s: float
    def __init__(self, leases: _Optional[_Iterable[_Union[Lease, _Mapping]]] = ..., lease_ttl_s: _Optional[float] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("lease_id", "started_at")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    started_at: float
    def __init__(self, lease_id: _Optional[str] = ..., started_at: _Optional[float] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("lease_ids", "started")
    LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    lease_ids: _containers.RepeatedScalarFieldContainer[str]
    started: _containers.RepeatedCompositeFieldContainer[Started]
    def __init__(self, lease_ids: _Optional[_Iterable[str]] = ..., started: _Optional[_Iterable[_Union[Started, _Mapping]]] = ...) -> None: ...

class RenewReply(_message.Message):
    __slots__ = ("stop_lease_ids", "expires_at")
    STOP_LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    stop_lease_ids: _containers.RepeatedScalarFieldContainer[str]
    expires_at: float
    def __init__(self, stop_lease_ids: _Optional[_Iterable[str]] = ..., expires_at: _Optional[float] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("lease_id", "ok", "result", "result_blob", "error", "retryable", "started_at", "finished_at")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RESULT_BLOB_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    ok: bool
    result: bytes
    result_blob: str
    error: str
    retryable: bool
    started_at: float
    finished_at: float
    def __init__(self, lease_id: _Optional[str] = ..., ok: _Optional[bool] = ..., result: _Optional[bytes] = ..., result_blob: _Optional[str] = ..., error: _Optional[str] = ..., retryable: _Optional[bool] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class CompleteReply(_message.Message):
    __slots__ = ("accepted", "discarded")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DISCARDED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    discarded: int
    def __init__(self, accepted: _Optional[int] = ..., discarded: _Optional[int] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ("lease_id", "started")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    started: bool
    def __init__(self, lease_id: _Optional[str] = ..., started: _Optional[bool] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("releases",)
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    releases: _containers.RepeatedCompositeFieldContainer[Release]
    def __init__(self, releases: _Optional[_Iterable[_Union[Release, _Mapping]]] = ...) -> None: ...

class ReleaseReply(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: int
    def __init__(self, released: _Optional[int] = ...) -> None: ...

class BlobChunk(_message.Message):
    __slots__ = ("data", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., sha256: _Optional[str] = ...) -> None: ...

class BlobRef(_message.Message):
    __slots__ = ("sha256", "size")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...
