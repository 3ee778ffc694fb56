"""``/api/tasks``: list, submit (multipart: spec + data; a simulation sends no
data), show, cancel, retry, delete, download the result — all through the one
``TaskService``.

Permissions are the UI's: analysts and admins use tasks (analysts only their
own; someone else's task is 404, as if it did not exist), viewers have no
Tasks page and get 403 here. A task without a result (not finished, failed,
cancelled) answers ``/result`` with 409.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from hivemind_core.api.common import blocking, endpoint, int_param, jsonable, principal, runtime
from hivemind_core.api.uploads import form_text, read_form
from hivemind_core.errors import ConflictError, NotFoundError, ValidationError
from hivemind_core.jobs.inputs import takes_data
from hivemind_core.jobs.spec import JobSpec, parse_spec
from hivemind_core.principal import Principal, require_task_user
from hivemind_core.tasks import states
from hivemind_core.tasks.output import download_name
from hivemind_core.tasks.staging import stage_upload

MAX_PAGE = 500


async def _task_user(request: Request) -> Principal:
    return require_task_user(await principal(request))


TASK_FIELDS = ("id", "owner", "name", "type", "status", "priority", "progress", "created_at", "started_at",
               "finished_at", "error", "input_name", "input_size", "input_rows", "result_rows", "result_format",
               "subtasks_total", "subtasks_done")
SUBTASK_FIELDS = ("shard", "status", "attempts", "node_id", "node_name", "created_at", "started_at",
                  "finished_at", "error", "rows")


def task_json(task: Any) -> dict[str, Any]:
    """The public view of a task: no internal bookkeeping, the spec as JSON, whether a result exists."""
    body = {f: getattr(task, f) for f in TASK_FIELDS}
    try:
        body["spec"] = json.loads(task.spec) if task.spec else None
    except ValueError:
        body["spec"] = task.spec
    body["has_result"] = bool(task.result_path)
    return jsonable(body)


def subtask_json(subtask: Any) -> dict[str, Any]:
    return jsonable({f: getattr(subtask, f) for f in SUBTASK_FIELDS})


@endpoint
async def list_tasks(request: Request) -> JSONResponse:
    who = await _task_user(request)
    status = request.query_params.get("status") or None
    offset = int_param(request, "offset", 0)
    limit = int_param(request, "limit", 50, minimum=1, maximum=MAX_PAGE)
    tasks, total = await blocking(runtime().tasks.list, who, status, offset, limit)
    return JSONResponse({"tasks": [task_json(t) for t in tasks], "total": total, "offset": offset, "limit": limit})


def _data_part(form: FormData, job: JobSpec) -> UploadFile | None:
    """The dataset of the request: required for every job type that reads data, refused for a simulation."""
    data = form.get("data")
    if isinstance(data, UploadFile) and not data.filename and not data.size:
        data = None   # an HTML form's file field left empty
    if takes_data(job):
        if not isinstance(data, UploadFile):
            raise ValidationError(f"The request has no 'data' file part: a {job.type} job needs the dataset to "
                                  "process (curl: -F data=@file.csv).", field="data")
        return data
    if data is not None:
        raise ValidationError(f"A {job.type} job reads no data: send the 'spec' part only, without 'data'.",
                              field="data")
    return None


def _submit(who: Principal, job: JobSpec, upload: UploadFile | None) -> Any:
    rt = runtime()
    if upload is None:
        return rt.tasks.submit(who, job, None)
    path = stage_upload(upload.file, upload.filename or "data", rt.settings)
    try:
        return rt.tasks.submit(who, job, path, upload.filename or path.name)
    finally:
        path.unlink(missing_ok=True)


@endpoint
async def submit_task(request: Request) -> JSONResponse:
    who = await _task_user(request)
    form = await read_form(request, runtime().settings.max_upload_mb)
    try:
        job = await blocking(parse_spec, await form_text(form, "spec"))   # its type says whether data belongs
        task = await blocking(_submit, who, job, _data_part(form, job))
    finally:
        await form.close()
    body = task_json(task)
    return JSONResponse({"task_id": body.get("id"), "task": body}, status_code=201,
                        headers={"Location": f"/api/tasks/{body.get('id')}"})


@endpoint
async def get_task(request: Request) -> JSONResponse:
    who = await _task_user(request)
    task_id = request.path_params["task_id"]
    service = runtime().tasks
    task = await blocking(service.get, who, task_id)
    subtasks = await blocking(service.subtasks, who, task_id)
    return JSONResponse({**task_json(task), "subtasks": [subtask_json(s) for s in subtasks]})


@endpoint
async def cancel_task(request: Request) -> JSONResponse:
    who = await _task_user(request)
    return JSONResponse(task_json(await blocking(runtime().tasks.cancel, who, request.path_params["task_id"])))


@endpoint
async def retry_task(request: Request) -> JSONResponse:
    who = await _task_user(request)
    return JSONResponse(task_json(await blocking(runtime().tasks.retry, who, request.path_params["task_id"])))


@endpoint
async def delete_task(request: Request) -> Response:
    who = await _task_user(request)
    await blocking(runtime().tasks.delete, who, request.path_params["task_id"])
    return Response(status_code=204)


def _result_path(who: Principal, task_id: str) -> tuple[Any, Path]:
    """(task, its result file). No such task (or someone else's): 404; a task that has no result
    (not finished yet, failed, cancelled): 409, so a client can tell "wait" from "wrong id"."""
    service = runtime().tasks
    task = service.get(who, task_id)
    try:
        path = service.result_path(who, task_id)
    except NotFoundError as exc:
        if task.status != states.COMPLETED:
            raise ConflictError(str(exc)) from None
        raise
    return task, path


@endpoint
async def task_result(request: Request) -> Response:
    who = await _task_user(request)
    task, path = await blocking(_result_path, who, request.path_params["task_id"])
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=download_name(task))
