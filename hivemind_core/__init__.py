"""HiveMind Master core: everything that is not UI.

Where things live:
    config          environment variables, read in one place
    errors          the exception types users see
    fileutil        atomic 0600 writes
    secrets_store   generated secrets in the data dir
    sqlite          SQLite engines shared by several processes (WAL, BEGIN IMMEDIATE)
    db              the master's database (SQLModel)
    monitoring/     host metrics, health report, alerts, node statistics
    cli             ``python -m hivemind_core``
"""

__version__ = "0.1.0"
