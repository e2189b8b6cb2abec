"""Stage 5, the report: summary.json (per seed and over seeds) and the results tables, read off a planned sweep's
states."""
from orchestrator.report.seeds import over_seeds_table
from orchestrator.report.summary import build_summary, correlations
from orchestrator.report.table import results_table, seeds_table

__all__ = ["build_summary", "correlations", "over_seeds_table", "results_table", "seeds_table"]
