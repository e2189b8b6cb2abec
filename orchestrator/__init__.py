"""Sweep spec -> DAG -> content keys -> MLflow-backed cache -> executors; the `unlearn-sweep` command."""
