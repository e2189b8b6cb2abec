"""Stage 5, the report: summary.json (per seed and over seeds), the results tables, the same results as flat rows
(MLflow result runs and tables, `rows.py`), the figures (`figures.py`) and the self-contained HTML report
(`html.py`, ordered by `ranking.py`), and `compare` of two sweeps, all read off a planned sweep's states or a
summary.json; `reuse.py` prints and writes them for a re-run whose identical sweep already finished.

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
