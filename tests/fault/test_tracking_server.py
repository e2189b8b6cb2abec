"""The tracking server going away under a running sweep: a real `mlflow server` (over a sqlite file, and over
PostgreSQL with S3 artifacts as a lab runs it: tests/postgres.py) stopped with its whole process group once the sweep
has finished a node and is computing another. Back after a while on the same port: the sweep retries its store calls
with backoff, carries on and records every node exactly once. Gone for good (past the retry window, made short here):
the sweep stops cleanly with exit 3 and a summary of what finished, and once the server is back the same command
computes only what was never recorded and closes the dead sweep's run. Only the server process goes: its database (the
sqlite file, the PostgreSQL cluster) stays."""

import os
import signal

import pytest
from mlflow.tracking import MlflowClient

from tests.servers import free_port

from .helpers import Driver, finished_once, node_runs, small_sweep, sweep_runs, under_way

pytestmark = pytest.mark.fault

NODES = 14  # the small sweep, relearning with k = 0 only


def stop(process) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the whole server at once, as a lost pod
    process.wait()


def test_a_server_down_for_a_while_and_back_loses_nothing(tmp_path, served):
    port, db = free_port(), served.db
    sweep = small_sweep(tmp_path, relearn__k=[0], tracking__artifact_location=served.artifacts)
    with served.serve(port) as (uri, process):
        driver = Driver(tmp_path, sweep, uri, name="run")
        driver.until(lambda: under_way(db))
        stop(process)
        driver.until(lambda: "unreachable" in driver.output())  # the sweep noticed and is retrying
    with served.serve(port) as (uri, _):  # back, same database
        assert driver.wait() == 0, driver.output()[-3000:]
        assert "answers again" in driver.output()
        summary = driver.result()
        assert summary["nodes"] == {"total": NODES, "executed": NODES, "cached": 0, "failed": 0}
        counts = finished_once(uri)
        assert len(counts) == NODES and set(counts.values()) == {1}
        (parent,) = sweep_runs(uri)
        assert parent.info.status == "FINISHED"


def test_a_server_down_for_good_stops_the_sweep_and_the_rerun_computes_only_what_was_never_recorded(tmp_path, served):
    port, db = free_port(), served.db
    sweep = small_sweep(tmp_path, relearn__k=[0], tracking__artifact_location=served.artifacts)
    short = {"UNLEARN_SWEEP_STORE_OUTAGE_SECONDS": "3"}
    with served.serve(port) as (uri, process):
        first = Driver(tmp_path, sweep, uri, env=short, name="first")
        first.until(lambda: under_way(db))
        stop(process)
        assert first.wait() == 3, first.output()[-3000:]
    log = " ".join(first.output().split())
    assert "has not answered" in log and "run the same command when the server is back" in log
    stopped = first.result()  # what finished before the server went
    assert stopped["nodes"]["executed"] >= 1 and stopped["nodes"]["total"] == NODES

    with served.serve(port) as (uri, _):
        recorded = set(finished_once(uri))
        assert len(recorded) == stopped["nodes"]["executed"]  # everything it finished is in the store
        second = Driver(tmp_path, sweep, uri, name="second")
        assert second.wait() == 0, second.output()[-3000:]
        resumed = second.result()
        assert resumed["nodes"] == {
            "total": NODES,
            "executed": NODES - len(recorded),
            "cached": len(recorded),
            "failed": 0,
        }
        counts = finished_once(uri)
        assert len(counts) == NODES and set(counts.values()) == {1}
        assert not [r for r in node_runs(uri) if r.info.status == "RUNNING"]
        dead = next(r for r in sweep_runs(uri) if r.data.tags["sweep_id"] == stopped["sweep_id"])
        assert MlflowClient(uri).get_run(dead.info.run_id).info.status == "KILLED"
