"""Which input a job reads, opened and checked before anything is stored or queued.

A simulation reads no data; every other job type reads one dataset, whose
schema the spec is checked against. One function, for the task service and the
CLI's early check alike.
"""

from __future__ import annotations

from pathlib import Path

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.readers import TableSource, open_source
from hivemind_core.jobs.spec import JobSpec, validate_against_schema


def takes_data(spec: JobSpec | str) -> bool:
    """Does a job of this spec (or job type name) read a dataset?"""
    return (spec if isinstance(spec, str) else spec.type) != "simulation"


def open_job_input(spec: JobSpec, data_path: Path | None, name: str | None = None) -> TableSource | None:
    """The job's dataset, schema-checked against ``spec``; None for a simulation (which must get none)."""
    if not takes_data(spec):
        if data_path is not None:
            raise ValidationError(f"input: a {spec.type} job reads no data; leave the data file out "
                                  "(on the command line: - or nothing)", field="input")
        return None
    if data_path is None:
        raise ValidationError(f"input: a {spec.type} job needs a dataset (CSV, TSV, Parquet or JSON Lines)",
                              field="input")
    source = open_source(data_path, spec.input.format, spec.input.delimiter, spec.input.encoding,
                         name=name or Path(data_path).name)
    validate_against_schema(spec, source.type_names())
    return source
