"""Upload a dataset, look at it, describe the job and submit it: a pipeline built
from the real columns or a ``process(df)`` script (data_processing), a scored
parameter grid (machine_learning), or a seeded Monte Carlo script (simulation,
which reads no data and so needs no upload). The specs are built by
``hivemind_core.jobs.spec_builder``; this page only lays out the fields."""

import json
from pathlib import Path

import streamlit as st

from hivemind_core.config import get_settings
from hivemind_core.errors import HiveMindError, ValidationError
from hivemind_core.jobs.encodings import DecodeError
from hivemind_core.jobs.inputs import takes_data
from hivemind_core.jobs.job_types import MAX_FOLDS, MAX_TRIALS
from hivemind_core.jobs.names import clean_name
from hivemind_core.jobs.readers import detect_format, preview
from hivemind_core.jobs.spec import (
    FILTER_OPS,
    JOB_TYPES,
    MAX_SHARDS,
    MIN_MEMORY_MB,
    OUTPUT_FORMATS,
    aggregations_for_type,
)
from hivemind_core.jobs.spec_builder import (
    DEFAULT_GRID,
    DEFAULT_TRIALS,
    ENCODING_CHOICES,
    OTHER_ENCODING,
    SCRIPT_TEMPLATE,
    SIMULATION_TEMPLATE,
    TEXT_FORMATS,
    FilterRow,
    GridRow,
    SortRow,
    SpecForm,
    build_spec,
    chosen_encoding,
    default_target,
    limit_defaults,
    ml_template,
    output_columns,
)
from hivemind_core.tasks.staging import stage_upload
from hivemind_core.units import fmt_mib
from pages import _ui as ui

STAGED_KEY = "upload_staged"   # {"file_id", "path", "name"} of the file staged for this session
FILE_TYPES = ["csv", "tsv", "txt", "parquet", "pq", "jsonl", "ndjson", "json"]
MAX_FILTERS, MAX_SORT_KEYS, MAX_GRID_PARAMETERS = 10, 5, 10
MAX_SEED = 2**53 - 1   # the largest whole number a browser's number field holds exactly
ENCODING_LABEL = "Text encoding"
TYPE_HELP = {
    "data_processing": "filter, group and aggregate the rows, or run process(df) on them",
    "machine_learning": "score a parameter grid with k-fold cross-validation",
    "simulation": "seeded Monte Carlo; reads no data",
}

who = ui.require_page("upload")
settings = get_settings()
st.title("Upload a dataset")
if not who.can_submit:
    st.info("Your role can look but not run jobs.")
    st.stop()
errors = ui.FieldErrors(plain_text=True)   # messages quote user text (column names, values): never Markdown


def drop_staged() -> None:
    staged = st.session_state.pop(STAGED_KEY, None)
    if staged:
        Path(staged["path"]).unlink(missing_ok=True)


def encoding_message(exc: DecodeError) -> str:
    """A decode error, pointing at this page's encoding field (not at the spec's input.encoding);
    plain text, to show through ui.plain()."""
    problem = exc.problem.removeprefix("input: ")
    return (f"This file cannot be read: {problem}. Choose the encoding it was saved in under "
            f'"{ENCODING_LABEL}" (files saved by Excel on Windows are often cp1252; latin-1 reads any bytes).')


def encoding_field() -> str | None:
    """The dataset's text encoding (CSV/TSV), for the preview and the spec; stops on an unknown name."""
    c = st.columns(2)
    label = c[0].selectbox(ENCODING_LABEL, list(ENCODING_CHOICES), key="input_encoding",
                           help="The character encoding the file was saved in. UTF-8 (with or without BOM) "
                                "unless chosen here.")
    other = ""
    if label == OTHER_ENCODING:
        other = c[1].text_input("Encoding name", key="input_encoding_other", placeholder="e.g. iso-8859-15",
                                help="Any text encoding Python knows: cp1250, iso-8859-2, shift_jis, utf-16-le ...")
    try:
        encoding = chosen_encoding(label, other)
    except ValidationError as exc:
        st.error(ui.plain(exc))
        st.stop()
    errors.slot("input.encoding")
    return encoding


def dataset() -> tuple[Path, str, dict[str, str], str | None]:
    """The uploader, the staged copy of the file, its encoding and its preview; stops the page until
    a readable file is there."""
    uploaded = st.file_uploader(
        "Dataset: CSV, TSV, Parquet, JSON Lines or a JSON array of objects", type=FILE_TYPES, key="upload_file",
        max_upload_size=settings.max_upload_mb,
    )
    st.caption(f"Upload limit: **{fmt_mib(settings.max_upload_mb)}** per file.")
    if uploaded is None:
        drop_staged()
        st.stop()
    staged = st.session_state.get(STAGED_KEY)
    if not staged or staged["file_id"] != uploaded.file_id:
        drop_staged()
        path = stage_upload(uploaded, uploaded.name, settings)
        staged = {"file_id": uploaded.file_id, "path": str(path), "name": uploaded.name}
        st.session_state[STAGED_KEY] = staged
    data_path = Path(staged["path"])
    try:
        fmt = detect_format(data_path, uploaded.name)
    except HiveMindError as exc:
        st.error(ui.plain(f"This file cannot be read: {exc}"))
        st.stop()
    encoding = encoding_field() if fmt in TEXT_FORMATS else None
    try:
        head, types = preview(data_path, fmt=fmt, n=20, encoding=encoding)
    except DecodeError as exc:
        st.error(ui.plain(encoding_message(exc)))
        st.stop()
    except HiveMindError as exc:
        st.error(ui.plain(f"This file cannot be read: {exc}"))
        st.stop()
    st.subheader("Preview")
    st.caption(f"{ui.plain(uploaded.name)} · {fmt} · {ui.fmt_bytes(uploaded.size)} · first {len(head)} rows")
    st.dataframe(head, hide_index=True, width="stretch")
    with st.expander("Column types", expanded=False):
        st.dataframe([{"column": c, "type": t} for c, t in types.items()], hide_index=True)
    return data_path, uploaded.name, types, encoding


def pipeline_fields(form: SpecForm, types: dict[str, str]) -> None:
    columns = list(types)
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
        form.aggregate[col] = c[1].multiselect(f"Aggregations of {ui.plain(col)} ({types[col]})", allowed,
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


def grid_search_fields(form: SpecForm, types: dict[str, str]) -> None:
    columns = list(types)
    default = default_target(types)
    c = st.columns([3, 2, 2])
    form.target = c[0].selectbox(
        "Target column (rows without it are left out)", [None, *columns],
        index=columns.index(default) + 1 if default in columns else 0, key="ml_target",
        format_func=lambda col: "(none)" if col is None else f"{col} ({types[col]})",
    )
    with c[0]:
        errors.slot("target")
    # The script, metric and direction follow the target's template until edited.
    template = ml_template(form.target, types)
    ui.follow_default("ml_script", template.script)
    ui.follow_default("ml_metric", template.metric)
    ui.follow_default("ml_maximize", template.maximize)
    form.metric = c[1].text_input("Ranking metric (empty: the first returned)", key="ml_metric",
                                  help="A key of the dict fit_score returns; a plain number is the metric 'score'.")
    with c[1]:
        errors.slot("metric")
    form.maximize = c[2].checkbox("Higher is better", key="ml_maximize",
                                  help="Unchecked for errors such as rmse: the lowest mean ranks first.")
    with c[2]:
        errors.slot("maximize")
    form.script = st.text_area("Script — define fit_score(train, test, params) returning a number or a dict "
                               "of numbers", key="ml_script", height=360)
    errors.slot("script")

    st.markdown("**Parameter grid** — every combination is scored on every fold; `params` holds one combination")
    n_params = st.number_input("Number of parameters", 1, MAX_GRID_PARAMETERS, len(DEFAULT_GRID), key="n_grid")
    for i in range(int(n_params)):
        name, values = DEFAULT_GRID[i] if i < len(DEFAULT_GRID) else ("", "")
        c = st.columns([1, 3])
        form.grid.append(GridRow(
            c[0].text_input("Parameter", value=name, key=f"g_name_{i}"),
            c[1].text_input("Values to try, separated by commas", value=values, key=f"g_vals_{i}",
                            help="Numbers when every value reads as one (0.1, 1, 10), true/false, else text "
                                 "(mean, median). A JSON list for values with commas: [\"a,b\", \"c\"]."),
        ))
    errors.slot("grid")
    c = st.columns(2)
    form.folds = int(c[0].number_input("Folds", 2, MAX_FOLDS, 5, key="ml_folds"))
    with c[0]:
        errors.slot("folds")
    form.seed = int(c[1].number_input("Seed (which rows go to which fold)", 0, MAX_SEED, 0, key="ml_seed"))
    with c[1]:
        errors.slot("seed")


def limit_fields(form: SpecForm) -> None:
    """Per-subtask limits, collapsed: they start at the spec's defaults, and parse_spec checks what is
    entered (its message shows under the field)."""
    default = limit_defaults()
    with st.expander("Advanced: time limit, memory and attempts per subtask", expanded=False):
        c = st.columns(3)
        form.timeout_s = float(c[0].number_input(
            "Time limit per subtask, seconds (timeout_s)", value=float(default["timeout_s"]), step=60.0,
            format="%g", key="timeout_s",
            help=f"A subtask still running after this long is stopped and the task fails; a time-out is not "
                 f"tried again (default {default['timeout_s']:g} s). Lower it to stop a runaway script sooner, "
                 "raise it for long computations."))
        with c[0]:
            errors.slot("timeout_s")
        form.memory_mb = int(c[1].number_input(
            "Memory per subtask, MB (memory_mb)", value=int(default["memory_mb"]), step=256, key="memory_mb",
            help=f"The most memory a subtask may use, at least {MIN_MEMORY_MB} MB; over it, the subtask stops "
                 f"and the task fails. 0: the worker's own limit (its --memory-mb setting). "
                 f"Default {default['memory_mb']}."))
        with c[1]:
            errors.slot("memory_mb")
        form.max_attempts = int(c[2].number_input(
            "Attempts per subtask (max_attempts)", value=int(default["max_attempts"]), step=1, key="max_attempts",
            help=f"How often a subtask is tried before the task fails (default {default['max_attempts']}): a "
                 "worker that goes away or a failure that may pass is tried again; 1 means no retry."))
        with c[2]:
            errors.slot("max_attempts")


def simulation_fields(form: SpecForm) -> None:
    st.caption("A simulation reads no data: nothing to upload. Each shard runs its share of the trials "
               "on its own seed stream; the same seed and shard count always give the same answer.")
    form.script = st.text_area("Script — define simulate(rng, n) returning {name: per-trial values} or a "
                               "DataFrame", value=SIMULATION_TEMPLATE, key="sim_script", height=300)
    errors.slot("script")
    c = st.columns(2)
    form.trials = int(c[0].number_input("Trials (in total)", 1, MAX_TRIALS, DEFAULT_TRIALS, key="sim_trials"))
    with c[0]:
        errors.slot("trials")
    form.seed = int(c[1].number_input("Seed", 0, MAX_SEED, 0, key="sim_seed"))
    with c[1]:
        errors.slot("seed")


job_type = st.selectbox("Task type", JOB_TYPES, key="job_type", format_func=lambda t: f"{t} — {TYPE_HELP[t]}")
errors.slot("type")
if takes_data(job_type):
    data_path, input_name, types, encoding = dataset()
    default_name = clean_name(f"{input_name} job")
else:
    drop_staged()
    data_path, input_name, types, encoding = None, "", {}, None
    default_name = "Monte Carlo simulation"

st.subheader("Job")
top = st.columns([3, 2])
name = top[0].text_input("Job name", value=default_name, key="job_name")
with top[0]:
    errors.slot("name")
mode = "pipeline"
if job_type == "data_processing":
    mode_label = top[1].radio("Describe the job with", ["a pipeline", "a Python script"], key="job_mode")
    mode = "script" if mode_label == "a Python script" else "pipeline"

form = SpecForm(name=name, type=job_type, mode=mode, encoding=encoding)
if job_type == "machine_learning":
    grid_search_fields(form, types)
elif job_type == "simulation":
    simulation_fields(form)
elif mode == "script":
    form.script = st.text_area("Script — define process(df) returning a DataFrame", value=SCRIPT_TEMPLATE,
                               height=220, key="job_script")
    errors.slot("script")
else:
    pipeline_fields(form, types)

st.markdown("**Run settings**")
c = st.columns(3)
shards = c[0].number_input("Shards (0: automatic)", 0, MAX_SHARDS, 0, key="shards",
                           help="How many subtasks run in parallel.")
form.shards = int(shards) or None
with c[0]:
    errors.slot("split")
form.priority = c[1].slider("Priority (higher runs first)", 0, 9, 5, key="priority")
form.output_format = c[2].selectbox("Output format", OUTPUT_FORMATS, key="output_format")
with c[2]:
    errors.slot("output")
errors.slot("input")
limit_fields(form)

with st.expander("Job spec (JSON) — the same document the REST API and the CLI take"):
    try:
        st.code(json.dumps(build_spec(form, types), indent=2), language="json")
    except HiveMindError as exc:
        st.caption(ui.plain(f"Not complete yet: {exc}"))

if st.button("Submit job", type="primary", key="submit_job"):
    try:
        task = ui.runtime().tasks.submit(who, build_spec(form, types), data_path, input_name)
    except HiveMindError as exc:
        if isinstance(exc, DecodeError):   # found past the preview's sample
            exc = ValidationError(encoding_message(exc), field="input.encoding")
        errors.show(exc)   # at its field (which may be scrolled away or in a collapsed section) ...
        st.error(ui.plain(f"Not submitted: {exc}"))   # ... and right under the button
    else:
        drop_staged()   # the task has its shards in the node pool; retries use those, not this file
        st.switch_page(ui.PAGES_DIR / "tasks.py", query_params={"task": str(task.id)})
