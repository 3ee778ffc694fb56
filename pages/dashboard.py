"""Dashboard: is everything up (node pool, database, workers), this host's
resources, task counts and throughput of all users (numbers only; analysts
also see their own counts), alerts — refreshed every 5 s."""

import time

import plotly.graph_objects as go
import streamlit as st

from hivemind_core.monitoring.system_status import system_status
from pages import _ui as ui

TASK_STATES = ("pending", "assigned", "running", "completed", "failed", "cancelled")
STATE_COLORS = {"pending": "#9e9e9e", "assigned": "#90caf9", "running": "#F5A623",
                "completed": "#4caf50", "failed": "#e53935", "cancelled": "#795548"}

who = ui.require_page("dashboard")
st.title("Dashboard")


@st.fragment(run_every=5)
def live() -> None:
    rt = ui.runtime()
    status = system_status(rt, who)
    health, host, totals = status.health, status.host, status.totals

    for alert in status.alerts:
        (st.error if alert.level == "error" else st.warning)(alert.message)
    if not status.alerts:
        st.success("All systems normal.")

    c = st.columns(5)
    c[0].metric("Node pool", "reachable" if health.node_pool_ok else "UNREACHABLE")
    c[1].metric("Database", "ok" if health.database_ok else "ERROR")
    c[2].metric("Workers online", health.workers_online)
    c[3].metric("Workers busy", health.workers_busy)
    c[4].metric("Workers offline", health.workers_offline)

    st.subheader("This host")
    h = st.columns(4)
    h[0].metric("CPU", f"{host['cpu_percent']:.0f}%", help=f"{host['cpu_count']} cores")
    h[1].metric("Memory", f"{host['memory_percent']:.0f}%",
                help=f"{ui.fmt_bytes(host['memory_used'])} of {ui.fmt_bytes(host['memory_total'])}")
    h[2].metric("Disk", f"{host['disk_percent']:.0f}%", help=f"{ui.fmt_bytes(host['disk_free'])} free")
    h[3].metric("Subtasks running", totals.running,
                help=f"{totals.slots} slots on {totals.live} live workers on {totals.hosts} host(s)")

    left, right = st.columns(2)
    with left:
        st.subheader("Tasks by status (all users)")
        counts = {s: int(status.task_counts.get(s, 0)) for s in TASK_STATES}
        fig = go.Figure(go.Bar(name="all users", x=list(counts), y=list(counts.values()),
                               marker_color=[STATE_COLORS[s] for s in counts]))
        if status.own_task_counts is not None:
            own = [int(status.own_task_counts.get(s, 0)) for s in TASK_STATES]
            fig.add_trace(go.Bar(name="yours", x=list(TASK_STATES), y=own, marker_color="#5c6bc0"))
            st.caption("Your tasks: " + " · ".join(f"{state} {n}" for state, n in zip(TASK_STATES, own, strict=True)))
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="tasks", barmode="group",
                          showlegend=status.own_task_counts is not None, yaxis_rangemode="tozero")
        if any(counts.values()):
            st.plotly_chart(fig, key="task_counts", width="stretch")
        else:  # an all-zero chart would show an empty −1 … 1 axis
            st.info("No tasks yet.")
    with right:
        st.subheader("Jobs finished per hour, last 24 h (all users)")
        hourly = status.finished_per_hour
        fig = go.Figure(go.Bar(x=[ui.local_time(h) for h, _ in hourly], y=[n for _, n in hourly],
                               marker_color="#F5A623"))
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="jobs",
                          yaxis_rangemode="tozero")
        if any(n for _, n in hourly):
            st.plotly_chart(fig, key="finished_per_hour", width="stretch")
        else:
            st.info("No jobs finished in the last 24 h yet.")
    st.caption("Task numbers count every user's tasks (numbers only, no names or owners)"
               + ("; the Tasks page lists yours." if who.can_submit else "."))
    st.caption(f"Updated {time.strftime('%H:%M:%S')} · refreshes every 5 s")


live()
