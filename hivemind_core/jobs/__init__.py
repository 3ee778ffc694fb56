"""Data jobs: the job spec, dataset readers, the splitter, worker operations and
the exact combine of partial results at the master."""

from hivemind_core.jobs.spec import AGGREGATIONS, FILTER_OPS, aggregations_for_type

__all__ = ["AGGREGATIONS", "FILTER_OPS", "aggregations_for_type"]
