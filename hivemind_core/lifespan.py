"""The web server's lifespan: start the master's services once per process when
the server starts (embedded cluster or a connection to HIVEMIND_NODE_POOL,
task syncer, logging) and stop them when it stops."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool

from hivemind_core.config import get_settings
from hivemind_core.logging_setup import setup_logging
from hivemind_core.runtime import install_runtime, start_runtime

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
    settings = get_settings()
    setup_logging(settings.logs_dir)
    runtime = await run_in_threadpool(start_runtime, settings)  # starting processes blocks: not on the loop
    install_runtime(runtime)
    try:
        yield {"runtime": runtime}
    finally:
        install_runtime(None)
        log.info("server stopping: shutting the master runtime down")
        await run_in_threadpool(runtime.stop)
