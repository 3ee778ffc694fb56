"""The node pool: gRPC server holding the node registry, the work queue with
leases, the blob store and node metrics history.

    python -m hivemind_core.nodepool --listen HOST:PORT --data-dir DIR

Modules: ``states`` (subtask state machine), ``store`` (SQLite), ``blobs``
(content-addressed files), ``auth`` (tokens), ``services/`` (one servicer per
gRPC service), ``server`` (wiring, background upkeep).
"""
