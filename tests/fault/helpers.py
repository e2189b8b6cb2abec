"""A sweep run as a user runs it, `python -m orchestrator run ...` in its own process (so real signals reach a real
driver), and what its store holds afterwards."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import REPO, tiny_quickstart

FINETUNE = [{"name": "finetune", "hparams": {"lr": 3.0e-3, "weight_decay": 0.0, "epochs": 0.5}}]


def small_sweep(folder: Path, **changes) -> Path:
    """The tiny quickstart with one method (17 nodes), its artifacts in `folder`."""
    changes = {"methods": FINETUNE, "tracking__artifact_location": str(folder / "artifacts"), **changes}
    return tiny_quickstart(folder / "sweep.yaml", **changes)


class Driver:
    """`unlearn-sweep run` in a subprocess of its own session, its output in a log file."""

    def __init__(self, folder: Path, sweep: Path, uri: str, *extra: str, env: dict | None = None, name: str = "run"):
        self.summary, self.log = folder / f"{name}.json", folder / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(sweep),
            "--tracking-uri",
            uri,
            "--summary",
            str(self.summary),
            "--no-report",
            *extra,
        ]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            )

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the sweep did not end:\n{self.output()[-3000:]}") from None

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """The driver and anything it started (its whole session), at once."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def result(self) -> dict:
        return json.loads(self.summary.read_text())

    def until(self, condition: Callable[[], bool], timeout: float = 300) -> None:
        """Waits for `condition` (polled) while the driver runs; fails if the driver ended first."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the sweep ended (exit {self.process.returncode}) first:\n{self.output()[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"gave up waiting:\n{self.output()[-3000:]}")
            time.sleep(0.2)


def all_runs(uri: str) -> list:
    """Every run of the sweep's experiment (deleted claims included); [] before the store exists."""
    try:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("unlearn-sweep")
        if experiment is None:
            return []
        return client.search_runs([experiment.experiment_id], "", max_results=5000, run_view_type=3)
    except Exception:  # noqa: BLE001 - the store may be half-created while the driver starts
        return []


def node_runs(uri: str) -> list:
    return [r for r in all_runs(uri) if "node_key" in r.data.tags]


def sweep_runs(uri: str) -> list:
    return [r for r in all_runs(uri) if r.data.tags.get("node_kind") == "sweep"]


_ENGINES: dict = {}


def query(db: str, sql: str, **params) -> list | None:
    """Rows of `sql` read straight from the store's database (None while it is not there yet, or not all its
    tables): a sqlite file opened read-only, since a client opening the store while the driver creates it would race
    it to create MLflow's tables; PostgreSQL (the database behind a tracking server, there while the server is down)
    through SQLAlchemy."""
    if db.startswith("sqlite:///"):
        try:
            with sqlite3.connect(f"file:{db.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=5) as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error:
            return None
    import sqlalchemy

    engine = _ENGINES.get(db) or _ENGINES.setdefault(db, sqlalchemy.create_engine(db, poolclass=sqlalchemy.NullPool))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sqlalchemy.text(sql), params)]
    except sqlalchemy.exc.SQLAlchemyError:
        return None


def running(db: str, kind: str) -> bool:
    """Whether a node of `kind` is being computed, read from the database (`query`): `db` is the store's SQLAlchemy
    URI (a sqlite store's own, or the PostgreSQL database behind a server)."""
    rows = query(
        db,
        "select count(*) from runs join tags on tags.run_uuid = runs.run_uuid where "
        "runs.status = 'RUNNING' and tags.key = 'node_kind' and tags.value = :kind",
        kind=kind,
    )
    return bool(rows and rows[0][0])


def finished_once(uri: str) -> Counter:
    """How many FINISHED runs each node key has."""
    return Counter(r.data.tags["node_key"] for r in node_runs(uri) if r.info.status == "FINISHED")


def assert_same_results(a: dict, b: dict) -> None:
    """Two summaries of one sweep agree on every metric (run ids, timings and how many nodes ran aside)."""
    from tests.test_ray_executor import assert_same_metrics

    assert_same_metrics({k: v for k, v in a.items() if k != "nodes"}, {k: v for k, v in b.items() if k != "nodes"})


def under_way(db: str) -> bool:
    """Whether the sweep has finished a node and is computing another (read from the database as `running` reads)."""
    rows = query(
        db,
        "select runs.status, count(*) from runs join tags on tags.run_uuid = runs.run_uuid "
        "where tags.key = 'node_key' and runs.lifecycle_stage = 'active' group by runs.status",
    )
    statuses = dict(rows or ())
    return statuses.get("FINISHED", 0) >= 1 and statuses.get("RUNNING", 0) >= 1
