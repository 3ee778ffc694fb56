"""Upload a dataset, look at it, describe the job (a pipeline built from the real
columns, or a Python ``process(df)`` script) and submit it."""

import json
from pathlib import Path

import streamlit as st

from hivemind_core.config import get_settings
from hivemind_core.errors import HiveMindError
from hivemind_core.jobs.readers import detect_format, preview
from hivemind_core.jobs.spec import FILTER_OPS, JOB_TYPES, MAX_SHARDS, OUTPUT_FORMATS, aggregations_for_type
from hivemind_core.jobs.spec_builder import SCRIPT_TEMPLATE, FilterRow, SortRow, SpecForm, build_spec, output_columns
from hivemind_core.tasks.staging import stage_upload
from pages import _ui as ui

STAGED_KEY = "upload_staged"   # {"file_id", "path", "name"} of the file staged for this session
FILE_TYPES = ["csv", "tsv", "txt", "parquet", "pq", "jsonl", "ndjson", "json"]
MAX_FILTERS, MAX_SORT_KEYS = 10, 5

who = ui.require_page("upload")
settings = get_settings()
st.title("Upload a dataset")
if not who.can_submit:
    st.info("Your role can look but not run jobs.")
    st.stop()

uploaded = st.file_uploader(
    "Dataset: CSV, TSV, Parquet or JSON Lines", type=FILE_TYPES, key="upload_file",
    max_upload_size=settings.max_upload_mb,
)
st.caption(f"Upload limit: **{settings.max_upload_mb} MB** per file.")
if uploaded is None:
    st.session_state.pop(STAGED_KEY, None)
    st.stop()

staged = st.session_state.get(STAGED_KEY)
if not staged or staged["file_id"] != uploaded.file_id:
    if staged:
        Path(staged["path"]).unlink(missing_ok=True)
    path = stage_upload(uploaded, uploaded.name, settings)
    staged = {"file_id": uploaded.file_id, "path": str(path), "name": uploaded.name}
    st.session_state[STAGED_KEY] = staged
data_path = Path(staged["path"])

try:
    fmt = detect_format(data_path, uploaded.name)
    head, types = preview(data_path, fmt=fmt, n=20)
except HiveMindError as exc:
    st.error(f"This file cannot be read: {exc}")
    st.stop()

st.subheader("Preview")
st.caption(f"{uploaded.name} · {fmt} · {ui.fmt_bytes(uploaded.size)} · first {len(head)} rows")
st.dataframe(head, hide_index=True, width="stretch")
with st.expander("Column types", expanded=False):
    st.dataframe([{"column": c, "type": t} for c, t in types.items()], hide_index=True)
columns = list(types)

st.subheader("Job")
errors = ui.FieldErrors()
top = st.columns([3, 2, 2])
name = top[0].text_input("Job name", value=f"{uploaded.name} job", key="job_name")
with top[0]:
    errors.slot("name")
job_type = top[1].selectbox("Task type", JOB_TYPES, key="job_type")
with top[1]:
    errors.slot("type")
mode_label = top[2].radio("Describe the job with", ["a pipeline", "a Python script"], key="job_mode")
mode = "script" if mode_label == "a Python script" else "pipeline"

form = SpecForm(name=name, type=job_type, mode=mode)
if mode == "script":
    form.script = st.text_area("Script — define process(df) returning a DataFrame", value=SCRIPT_TEMPLATE,
                               height=220, key="job_script")
    errors.slot("script")
else:
    st.markdown("**Filters** (all must hold)")
    n_filters = st.number_input("Number of filters", 0, MAX_FILTERS, 0, key="n_filters")
    for i in range(int(n_filters)):
        c = st.columns([3, 2, 3])
        column = c[0].selectbox("Column", columns, key=f"f_col_{i}")
        op = c[1].selectbox("Operator", FILTER_OPS, key=f"f_op_{i}")
        value = c[2].text_input("Value", key=f"f_val_{i}", disabled=op in ("is_null", "not_null"),
                                help="For in / not_in: values separated by commas.")
        form.filters.append(FilterRow(column, op, value))
    errors.slot("pipeline.filter")

    c = st.columns(2)
    form.group_by = c[0].multiselect("Group by", columns, key="group_by")
    with c[0]:
        errors.slot("pipeline.group_by")
    agg_columns = c[1].multiselect("Aggregate columns", [col for col in columns if col not in form.group_by],
                                   key="agg_columns")
    for col in agg_columns:
        allowed = aggregations_for_type(types[col])
        default = ["mean"] if "mean" in allowed else ["count"]
        form.aggregate[col] = c[1].multiselect(f"Aggregations of {col} ({types[col]})", allowed,
                                               default=default, key=f"agg_{col}")
    with c[1]:
        errors.slot("pipeline.aggregate")
    if not form.aggregate:
        form.columns = st.multiselect("Keep only these columns (empty: all)", columns, key="keep_columns")
        errors.slot("pipeline.columns")

    st.markdown("**Sort and limit**")
    sortable = output_columns(form, columns)
    n_sort = st.number_input("Number of sort keys", 0, MAX_SORT_KEYS, 0, key="n_sort")
    for i in range(int(n_sort)):
        c = st.columns([3, 1])
        form.sort.append(SortRow(c[0].selectbox("Sort by", sortable, key=f"s_col_{i}"),
                                 c[1].checkbox("descending", key=f"s_desc_{i}")))
    errors.slot("pipeline.sort")
    limit = st.number_input("Limit rows (0: no limit)", 0, None, 0, key="limit")
    form.limit = int(limit) or None
    errors.slot("pipeline.limit")

st.markdown("**Run settings**")
c = st.columns(3)
shards = c[0].number_input("Shards (0: automatic)", 0, MAX_SHARDS, 0, key="shards")
form.shards = int(shards) or None
with c[0]:
    errors.slot("split")
form.priority = c[1].slider("Priority (higher runs first)", 0, 9, 5, key="priority")
form.output_format = c[2].selectbox("Output format", OUTPUT_FORMATS, key="output_format")
with c[2]:
    errors.slot("output")

with st.expander("Job spec (JSON) — the same document the REST API and the CLI take"):
    try:
        st.code(json.dumps(build_spec(form, types), indent=2), language="json")
    except HiveMindError as exc:
        st.caption(f"Not complete yet: {exc}")

if st.button("Submit job", type="primary", key="submit_job"):
    try:
        task = ui.runtime().tasks.submit(who, build_spec(form, types), data_path, uploaded.name)
    except HiveMindError as exc:
        errors.show(exc)
    else:
        st.switch_page(ui.PAGES_DIR / "tasks.py", query_params={"task": str(task.id)})
