"""Stopping a sweep, and running the same command again. Real signals to a real `unlearn-sweep run` process with a
real sqlite store: SIGTERM ends it cleanly (in-flight runs KILLED with the reason, the sweep's run KILLED,
summary.json for what finished, exit 143), and the rerun reuses what finished and resumes the interrupted training
from its last periodic checkpoint, to the results of a run never interrupted. After a SIGKILL the rerun proves the
old driver dead (same machine, pid gone) and takes over its claims at once, even with a stale window it could never
wait out."""

import json
import signal
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.track import Tracker, take_over_dead_sweeps
from orchestrator.track.drivers import HOST, driver_tags, proven_dead

from .helpers import Driver, assert_same_results, finished_once, node_runs, running, small_sweep, sweep_runs

pytestmark = pytest.mark.fault

NODES = 17  # the small sweep: memorization, original, retrain and one method's nodes


def test_sigterm_ends_the_sweep_cleanly_and_the_same_command_resumes_it(tmp_path):
    sweep, uri = small_sweep(tmp_path, train__epochs=20), f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"UNLEARN_SWEEP_CACHE": str(tmp_path / "cache"), "UNLEARN_SWEEP_CHECKPOINT_STEPS": "5"}
    first = Driver(tmp_path, sweep, uri, "--threads", "1", env=env, name="first")
    # Stopped while the original trains, once it has saved a periodic checkpoint.
    first.until(lambda: running(uri, "train_original") and any((tmp_path / "cache" / "checkpoints").glob("*.pt")))
    first.signal(signal.SIGTERM)
    assert first.wait() == 128 + signal.SIGTERM

    runs = node_runs(uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]  # nothing left looking alive
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert [r.data.tags["node_kind"] for r in killed] == ["train_original"]
    assert "SIGTERM" in killed[0].data.tags["killed"]
    (parent,) = sweep_runs(uri)
    assert parent.info.status == "KILLED" and "SIGTERM" in parent.data.tags["killed"]
    stopped = first.result()  # summary.json for what finished: the memorization node
    done = {r.data.tags["node_key"] for r in runs if r.info.status == "FINISHED"}
    assert stopped["nodes"]["executed"] == len(done) >= 1 and stopped["nodes"]["total"] == NODES

    second = Driver(tmp_path, sweep, uri, "--threads", "1", env=env, name="second")  # the same command again
    assert second.wait() == 0, second.output()[-3000:]
    resumed = second.result()
    assert resumed["nodes"] == {"total": NODES, "executed": NODES - len(done), "cached": len(done), "failed": 0}
    counts = finished_once(uri)
    assert len(counts) == NODES and set(counts.values()) == {1}  # nothing computed twice, nothing lost
    (original,) = [
        r for r in node_runs(uri) if r.data.tags["node_kind"] == "train_original" and r.info.status == "FINISHED"
    ]
    assert int(original.data.tags["resumed_from_step"]) >= 5  # from its checkpoint, not from scratch
    assert not any((tmp_path / "cache" / "checkpoints").glob("*.pt"))  # removed once the result is recorded

    threads = torch.get_num_threads()
    try:  # the same sweep never interrupted, on one thread as the stopped and resumed runs
        assert (
            main(
                [
                    "run",
                    str(sweep),
                    "--tracking-uri",
                    f"sqlite:///{tmp_path / 'calm.db'}",
                    "--summary",
                    str(tmp_path / "calm.json"),
                    "--no-report",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    assert_same_results(json.loads((tmp_path / "calm.json").read_text()), resumed)


def test_after_a_sigkill_the_rerun_proves_the_driver_dead_and_takes_over_at_once(tmp_path, backend):
    """On a sqlite file and through an `mlflow server` over PostgreSQL with S3 artifacts."""
    sweep = small_sweep(tmp_path, train__epochs=20, tracking__artifact_location=backend.artifacts)
    uri = backend.uri
    first = Driver(tmp_path, sweep, uri, name="first")
    first.until(lambda: running(backend.db, "train_original"))
    first.kill()  # SIGKILL: no cleanup at all
    (dead,) = sweep_runs(uri)
    assert dead.info.status == "RUNNING"

    # A stale window it could never wait out: only the proof that the driver is gone lets the rerun take over.
    second = Driver(tmp_path, sweep, uri, env={"UNLEARN_SWEEP_STALE_SECONDS": "1000000"}, name="second")
    assert second.wait(timeout=900) == 0, second.output()[-3000:]  # minutes on a busy machine: 400 s was not enough
    assert "taking over" in second.output()
    dead = MlflowClient(uri).get_run(dead.info.run_id)
    assert dead.info.status == "KILLED" and "is gone" in dead.data.tags["killed"]
    counts = finished_once(uri)
    assert len(counts) == NODES and set(counts.values()) == {1}
    assert not [r for r in node_runs(uri) if r.info.status == "RUNNING"]


def test_a_driver_is_proven_dead_only_on_this_machine_once_its_process_is_gone():
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from orchestrator.track.drivers import driver_tags; "
            "print(repr(driver_tags()), flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    tags = eval(child.stdout.readline())  # noqa: S307 - our own child's repr of a dict of strings
    assert not proven_dead(tags)  # alive
    child.kill()
    child.wait()
    assert proven_dead(tags)  # its pid is gone
    assert not proven_dead({**tags, HOST: "another-machine"})  # elsewhere: never proven from here
    assert not proven_dead(driver_tags())  # this process


def test_resume_takes_over_an_earlier_run_of_the_same_sweep_on_another_machine(backend):
    tracker = Tracker(backend.uri, "unlearn-sweep", backend.artifacts)
    parent = tracker.lineage.start("quickstart", "quickstart-1", {}, "ray")
    client = tracker.store.client
    node = client.create_run(
        tracker.store.experiment_id, tags={"sweep_id": "quickstart-1", "node_key": "k", "node_kind": "unlearn"}
    )
    for run_id in (parent, node.info.run_id):  # a driver on another machine, its heartbeat fresh
        client.set_tag(run_id, HOST, "another-machine")
    assert take_over_dead_sweeps(tracker.claims) == []  # it may be alive: left alone
    assert take_over_dead_sweeps(tracker.claims, "another-sweep") == []
    (line,) = take_over_dead_sweeps(
        tracker.claims, "quickstart"
    )  # `run --resume` of this sweep: the user says it is gone
    assert "quickstart-1" in line
    for run_id in (parent, node.info.run_id):
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and "--resume" in run.data.tags["killed"]


GRACEFUL = """
import sys, time
from orchestrator.execute.stop import GracefulStop

with GracefulStop() as stop:
    try:
        print("working", flush=True)
        time.sleep(120)
    finally:
        stop.shield()
        print("cleaning up", flush=True)
        time.sleep(float(sys.argv[1]))
sys.exit(stop.exit_code(True))
"""


def test_the_first_signal_cleans_up_and_a_second_stops_at_once():
    for cleanup, signals in ((0, 1), (120, 2)):
        child = subprocess.Popen([sys.executable, "-c", GRACEFUL, str(cleanup)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "working\n"
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline() == "cleaning up\n"
        if signals == 2:  # while the (long) cleanup runs
            child.send_signal(signal.SIGINT)
        assert child.wait(timeout=60) == 128 + signal.SIGINT


IN_A_STORE_CALL = """
import time
from orchestrator.execute.stop import GracefulStop
from orchestrator.track.resilient import deferring_signals

with GracefulStop() as stop:
    try:
        with deferring_signals():  # as RetryingClient wraps a call to a sqlite store
            print("in a store call", flush=True)
            time.sleep(2)
            print("the call ended", flush=True)
        print("after the call", flush=True)
    finally:
        stop.shield()
        print("cleaning up", flush=True)
raise SystemExit(stop.exit_code(True))
"""


def test_a_signal_during_a_database_store_call_is_raised_once_the_call_ends():
    """Raised inside MLflow's SQLAlchemy session, it would leave a transaction open and the sqlite file locked
    against the cleanup's own writes."""
    child = subprocess.Popen([sys.executable, "-c", IN_A_STORE_CALL], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "in a store call\n"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert child.stdout.read() == "the call ended\ncleaning up\n"  # the call finished; nothing after it ran
