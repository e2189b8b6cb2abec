"""Stage 5, the report: summary.json (per seed and over seeds), the results tables, the same results as flat rows
(MLflow result runs and tables, `rows.py`), the figures (`figures.py`) and the self-contained HTML report
(`html.py`, ordered by `ranking.py`), and `compare` of two sweeps, all read off a planned sweep's states or a
summary.json. Figures and HTML import matplotlib, so they are imported where they are drawn."""
from orchestrator.report.rows import result_runs, results_columns
from orchestrator.report.seeds import over_seeds_table
from orchestrator.report.summary import build_summary, correlations
from orchestrator.report.table import results_table, seeds_table, summary_tables

__all__ = ["build_summary", "correlations", "over_seeds_table", "result_runs", "results_columns", "results_table", "seeds_table",
           "summary_tables"]
