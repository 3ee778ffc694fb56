"""Nodes: every worker node with its state and load, cluster totals, and a
node's CPU / memory / network history over a chosen window — refreshed every 5 s.

Node pool calls made here have a short deadline and no retries (``UI_CALL``): while
the pool is down the page says so at once instead of spinning past its refresh."""

import datetime as dt
import time

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from hivemind_core.errors import HiveMindError
from hivemind_core.monitoring.health import UI_CALL, pool_problem
from hivemind_core.monitoring.nodestats import (HISTORY_WINDOWS, ClusterTotals, cluster_totals, history_columns,
                                                node_rows)
from pages import _ui as ui

NO_METRICS = "No metrics in this window yet."
# the node table's columns, in order, with their headers (node_rows' keys are snake_case)
COLUMN_LABELS = {
    "name": "Name", "address": "Address", "status": "Status", "cores": "Cores", "memory": "Memory",
    "running": "Running", "slots": "Slots",
    "cpu_percent": st.column_config.NumberColumn("CPU", format="%.1f%%", help="CPU use of the host"),
    "memory_percent": st.column_config.NumberColumn("Memory used", format="%.1f%%", help="memory use of the host"),
    "sandbox": st.column_config.TextColumn("Sandbox", help="whether user code runs confined (Landlock)"),
    "last heartbeat": "Last heartbeat",
}

who = ui.require_page("nodes")
st.title("Nodes")
window = st.radio("History window", list(HISTORY_WINDOWS), horizontal=True, key="nodes_window")


def capacity(totals: ClusterTotals) -> str:
    """E.g. "3 workers on 1 host, 2 cores, 23.4 GB" — cores and memory once per host."""
    text = (f"{ui.plural(totals.live, 'worker')} on {ui.plural(totals.hosts, 'host')}, "
            f"{ui.plural(totals.cores, 'core')}, "
            f"{ui.fmt_bytes(totals.memory_mb * 1024 * 1024)}")
    return text + (f"; {totals.offline} offline" if totals.offline else "")


def history_chart(points_by_field: dict[str, list[float]], title: str) -> go.Figure:
    times = [dt.datetime.fromtimestamp(t) for t in points_by_field["timestamp"]]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("CPU %", "Memory %", "Network (bytes/s)"))
    fig.add_trace(go.Scatter(x=times, y=points_by_field["cpu_percent"], name="CPU %",
                             line=dict(color="#F5A623")), row=1, col=1)
    fig.add_trace(go.Scatter(x=times, y=points_by_field["memory_percent"], name="Memory %",
                             line=dict(color="#42a5f5")), row=2, col=1)
    fig.add_trace(go.Scatter(x=times, y=points_by_field["net_in_bps"], name="in"), row=3, col=1)
    fig.add_trace(go.Scatter(x=times, y=points_by_field["net_out_bps"], name="out"), row=3, col=1)
    fig.update_yaxes(range=[0, 100], autorange=False, row=1, col=1)
    fig.update_yaxes(range=[0, 100], autorange=False, row=2, col=1)
    peak = max(points_by_field["net_in_bps"] + points_by_field["net_out_bps"], default=0.0)
    if peak > 0:
        fig.update_yaxes(rangemode="nonnegative", row=3, col=1)
    else:  # an idle network: 0 … 1, not Plotly's −1 … 1 around a flat zero line
        fig.update_yaxes(range=[0, 1], autorange=False, row=3, col=1)
    fig.update_layout(height=560, title=title, margin=dict(l=10, r=10, t=60, b=10), legend_orientation="h")
    return fig


@st.fragment(run_every=5)
def live() -> None:
    rt = ui.runtime()
    now = time.time()
    try:
        nodes = rt.client.nodes(**UI_CALL)
    except HiveMindError as exc:
        st.error(pool_problem(exc, rt.settings))
        st.caption(f"Tried at {time.strftime('%H:%M:%S')} · tries again every 5 s")
        return
    totals = cluster_totals(nodes)
    c = st.columns(6)
    c[0].metric("Nodes", totals.nodes, help="worker processes, each its own node")
    c[1].metric("Online / busy / offline", f"{totals.online} / {totals.busy} / {totals.offline}")
    c[2].metric("Cores", totals.cores, help="of the hosts with a live worker, each host counted once")
    c[3].metric("Memory", ui.fmt_bytes(totals.memory_mb * 1024 * 1024),
                help="of the hosts with a live worker, each host counted once")
    c[4].metric("Running subtasks", f"{totals.running} / {totals.slots}", help="running / slots")
    c[5].metric("Mean CPU", f"{totals.cpu_percent:.0f}%", help="mean over the hosts")
    st.caption(capacity(totals))

    rows = node_rows(nodes, now)
    if not rows:
        st.info("No nodes have registered yet.")
        return
    st.dataframe(
        [{**{k: v for k, v in r.items() if k not in ("node_id", "host_id")},
          "memory": ui.fmt_bytes(r["memory_mb"] * 1024 * 1024),
          "last heartbeat": f"{r['last_heartbeat_s_ago']:.0f} s ago" if r["last_heartbeat_s_ago"] is not None
          else "never"} for r in rows],
        column_order=tuple(COLUMN_LABELS),
        column_config=COLUMN_LABELS, hide_index=True, width="stretch",
    )
    names = {r["node_id"]: f"{r['name']} ({r['address']})" for r in rows}
    node_id = st.selectbox("Node", list(names), format_func=names.get, key="nodes_selected")
    try:
        points = rt.client.node_history(node_id, since=now - HISTORY_WINDOWS[window], **UI_CALL)
    except HiveMindError as exc:
        st.error(pool_problem(exc, rt.settings))
        return
    if not points:
        st.info(NO_METRICS)
    else:
        st.plotly_chart(history_chart(history_columns(points), f"{names[node_id]} — {window}"),
                        key="node_history", width="stretch")
    st.caption(f"Updated {time.strftime('%H:%M:%S')} · refreshes every 5 s")


live()
