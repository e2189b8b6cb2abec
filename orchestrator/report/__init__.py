"""Stage 5, the report: summary.json and the results table, read off a planned sweep's states."""
from orchestrator.report.summary import build_summary, correlations
from orchestrator.report.table import results_table

__all__ = ["build_summary", "correlations", "results_table"]
