"""Tasks: a paged, filterable list (yours; admins see everyone's), and a task's
own page (``?task=<id>``) with its subtasks, cancel / retry / delete, a preview
of the result and its download. Running tasks update live."""

from pathlib import Path

import streamlit as st

from hivemind_core.errors import HiveMindError, NotFoundError
from hivemind_core.tasks.output import download_name
from hivemind_core.tasks.states import ACTIVE, STATUSES
from pages import _ui as ui

PAGE_SIZE = 50
LIVE_EVERY_S = 2
TRACEBACK_HEAD = "Traceback (most recent call last):"

who = ui.require_page("tasks")
service = ui.runtime().tasks


def open_task(task_id: str) -> None:
    st.query_params["task"] = task_id
    st.rerun()


def task_list() -> None:
    st.title("Tasks")
    c = st.columns([2, 2, 3])
    status = c[0].selectbox("Status", ("all", *STATUSES), key="tasks_status")
    status_filter = None if status == "all" else status
    total_now = service.list(who, status_filter, 0, 1)[1]
    pages = max(1, -(-total_now // PAGE_SIZE))
    page = c[1].number_input(f"Page (of {pages})", 1, pages, 1, key=f"tasks_page_{status}")

    @st.fragment(run_every=5)
    def table() -> None:
        tasks, total = service.list(who, status_filter, (int(page) - 1) * PAGE_SIZE, PAGE_SIZE)
        st.caption(f"{total} task(s)" + ("" if who.is_admin else " of yours"))
        if not tasks:
            if status_filter is not None and service.list(who, None, 0, 1)[1]:
                st.info(f"No tasks with status {status}.")
            else:
                st.info("No tasks here yet — submit one on the Upload page.")
            return
        rows = [{
            "id": t.id,
            "name": t.name or t.input_name,
            **({"owner": t.owner} if who.is_admin else {}),
            "status": t.status,
            "progress": t.progress,
            "created": ui.fmt_time(t.created_at),
            "run time": ui.fmt_duration(t.started_at, t.finished_at),
        } for t in tasks]
        event = st.dataframe(
            rows, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
            key="tasks_table",
            column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=100,
                                                                       format="%.0f%%"),
                           "id": st.column_config.TextColumn("id", width="small"),
                           "run time": st.column_config.TextColumn(
                               "run time", help="Of the latest run: a retry starts the clock again.")},
        )
        selected = event.selection.rows if event is not None else []
        if selected:
            open_task(rows[selected[0]]["id"])
        labels = {t.id: f"{t.name or t.input_name} · {t.status} · {t.id}" for t in tasks}
        o = st.columns([4, 1])
        choice = o[0].selectbox("Open a task", list(labels), format_func=labels.get, key="tasks_open_choice")
        o[1].button("Open", key="tasks_open", on_click=open_task, args=(choice,))

    table()


def task_page(task_id: str) -> None:
    try:
        task = service.get(who, task_id)
    except NotFoundError:
        st.title("Task not found")
        st.error(ui.plain(f"There is no task {task_id!r} you can see."))   # the id comes from the address
        st.button("Back to all tasks", on_click=back)
        return
    st.button("← All tasks", on_click=back, key="task_back")
    active = task.status in ACTIVE

    @st.fragment(run_every=LIVE_EVERY_S if active else None)
    def live() -> None:
        current = service.get(who, task_id)
        if active and current.status not in ACTIVE:
            st.rerun()  # finished while watched: redraw the whole page with its result
        st.title(ui.plain(current.name or current.input_name or current.id))
        cols = st.columns(4)
        cols[0].metric("Status", current.status)
        cols[1].metric("Subtasks done", f"{current.subtasks_done} / {current.subtasks_total}")
        cols[2].metric("Run time", ui.fmt_duration(current.started_at, current.finished_at),
                       help="Of the latest run: a retry starts the clock again." if current.round else None)
        cols[3].metric("Input", ui.plain(current.input_name) if current.input_name else "none (reads no data)",
                       help=ui.fmt_bytes(current.input_size))
        st.progress(min(1.0, current.progress / 100.0), text=f"{current.progress:.0f}% complete")
        st.caption(f"id {current.id} · owner {current.owner} · {current.type} · priority {current.priority} · "
                   f"created {ui.fmt_time(current.created_at)} · started {ui.fmt_time(current.started_at)} · "
                   f"finished {ui.fmt_time(current.finished_at)}"
                   + (f" · retried {current.round} time(s); times are the latest run's" if current.round else ""))
        if current.error:
            error_message(current.error)
        subtasks = service.subtasks(who, task_id)
        with st.expander(f"Subtasks ({len(subtasks)})", expanded=current.status == "failed"):
            st.dataframe([{
                "shard": s.shard, "status": s.status, "node": s.node_name or s.node_id or "—",
                "attempts": s.attempts, "rows": s.rows,
                "started": ui.fmt_time(s.started_at), "finished": ui.fmt_time(s.finished_at),
                "time": ui.fmt_duration(s.started_at, s.finished_at) if s.started_at else "—",
                "error": s.error.strip().splitlines()[-1] if s.error.strip() else "",
            } for s in subtasks], hide_index=True, width="stretch")
            for s in subtasks:
                if s.error.strip():
                    with st.popover(f"Error of shard {s.shard}"):
                        st.code(s.error, language=None)

    live()
    actions(task)
    if task.status == "completed":
        result(task)


def error_message(error: str) -> None:
    """A task's error: one line as the message (a traceback's last line), the whole text below as
    it is (never read as Markdown: a user's traceback or exception text is shown as written)."""
    lines = error.strip().splitlines()
    summary = lines[0]
    if len(lines) > 1 and summary.endswith(TRACEBACK_HEAD):
        summary = summary[: -len(TRACEBACK_HEAD)] + lines[-1]
    st.error(ui.plain(summary))
    if len(lines) > 1:
        st.code(error.strip(), language=None)


def actions(task) -> None:  # noqa: ANN001 - a Task
    c = st.columns(4)
    if task.status in ACTIVE and c[0].button("Cancel", key="task_cancel"):
        with ui.user_errors(plain_text=True):
            service.cancel(who, task.id)
            st.rerun()
    if task.status in ("failed", "cancelled") and c[1].button("Retry", key="task_retry"):
        with ui.user_errors(plain_text=True):
            service.retry(who, task.id)
            st.rerun()
    with c[3].popover("Delete"):
        st.write("Delete this task, its subtasks and its result?")
        if st.button("Delete for good", type="primary", key="task_delete"):
            with ui.user_errors(plain_text=True):
                service.delete(who, task.id)
                ui.flash(f"Task {ui.plain(task.name or task.id)} deleted.")
                back()
                st.rerun()


def result(task) -> None:  # noqa: ANN001 - a Task
    st.subheader("Result")
    try:
        path: Path = service.result_path(who, task.id)
        head = service.preview_result(who, task.id, n=20)
    except HiveMindError as exc:
        st.warning(ui.plain(f"The result is not available: {exc}"))
        return
    st.caption(f"{task.result_rows if task.result_rows is not None else '?'} rows · {task.result_format} · "
               f"{ui.fmt_bytes(path.stat().st_size)} · first {len(head)} rows below")
    st.dataframe(head, hide_index=True, width="stretch")
    name = download_name(task)
    st.download_button(f"Download {ui.plain(name)}", data=path.read_bytes(), file_name=name,
                       type="primary", key="task_download", icon=":material/download:", on_click="ignore")


def back() -> None:
    st.query_params.pop("task", None)


ui.show_flash()
requested = st.query_params.get("task")
if requested:
    task_page(requested)
else:
    task_list()
