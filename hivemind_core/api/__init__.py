"""The REST API, served by the same server as the UI (see ``app.py``).

One module per resource (``health``, ``tasks``, ``nodes``, ``system``), one
routing table (``routes.ROUTES``), shared plumbing in ``common``. Handlers call
the same core functions as the pages and the CLI, in a worker thread so the
event loop never blocks.
"""
