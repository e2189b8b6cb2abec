"""Stage 5, the report: summary.json read off the run's state (`summary.py`), the results tables, the plan's tables,
the same results as flat rows (MLflow result runs and tables, `rows.py`), the figures (`figures.py`) and the
self-contained HTML report (`html.py`, ordered by `ranking.py`), and `compare` of two sweeps. Everything but
`summary.py` reads a summary.json alone, never the run.

Names are imported from their modules when first used (PEP 562): the tables import without torch, SciPy or
matplotlib, so a re-run that computes nothing prints them fast."""

from orchestrator.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "orchestrator.report.rows": ("result_runs", "results_columns"),
        "orchestrator.report.seeds": ("over_seeds_table",),
        "orchestrator.report.summary": ("build_summary", "correlations"),
        "orchestrator.report.table": ("results_table", "seeds_table", "summary_tables"),
    },
)
