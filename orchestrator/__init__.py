"""Sweep file -> typed spec -> plan (DAG, content keys) -> the record (MLflow) -> execution -> report; the
`unlearn-sweep` command and its use cases (ARCHITECTURE.md)."""
