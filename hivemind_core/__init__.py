"""HiveMind Master core: everything that is not UI (see README "Layout").

Where things live:
    config          environment variables, read in one place
    errors          the exception types users see
    fileutil        atomic 0600 writes, --output checks
    secrets_store   generated secrets in the data dir
    sqlite, db      SQLite shared by several processes; the master's database
    principal       who is asking (permissions everywhere)
    jobs/           job spec, readers, splitter, operations, exact aggregation
    tasks/          the task manager (TaskService) and its CLI
    nodepool/       the node pool server;  worker/  the worker agent
    client, cluster NodePoolClient; the embedded cluster
    monitoring/     host metrics, health report, alerts, node statistics
    auth/, api/     users and tokens; REST routes
    vpn/            WireGuard peers and configs
    cli             ``python -m hivemind_core``
"""

__version__ = "0.1.0"
