"""Stopping a sweep on the Ray executor, and running the same command again (issue 29). Real signals to a real
`unlearn-sweep run --executor ray` process with a real sqlite store, as tests/fault/test_stop_and_resume.py does for
the local executor: SIGTERM to a driver that started its own local Ray, and `ray job stop` of a sweep submitted to a
`ray start --head` cluster (SIGTERM to the job's entrypoint, SIGKILL RAY_JOB_STOP_WAIT_TIME_S later). Either way the
in-flight node runs end KILLED, the sweep's run KILLED, summary.json holds what finished, the driver leaves no Ray
process behind, and the same command again computes only what was not recorded.

Workers never inherit the driver's MLFLOW_RUN_ID (MLflow issue 15713: an inherited run id overrides the parent run
a worker asks for): a worker process's setup hook (ray_hooks.py) writes down what each node saw."""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.servers import free_port, server

from .helpers import Driver, all_runs, finished_once, node_runs, small_sweep, sweep_runs, under_way

pytestmark = pytest.mark.fault

NODES = 17  # the small sweep: memorization, original, retrain and one method's nodes
RAY = str(Path(sys.executable).with_name("ray"))


def ray_processes(temp: str) -> list[int]:
    """This user's processes that belong to the Ray whose temp dir is `temp` (RAY_TMPDIR in their environment: the
    raylet, the GCS, the workers, whatever name they give themselves)."""
    found = []
    marker = f"RAY_TMPDIR={temp}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    return found


def assert_stopped_cleanly(uri: str, stopped: dict) -> set[str]:
    """Nothing RUNNING, the in-flight nodes KILLED by SIGTERM, the sweep's run KILLED, summary.json for what finished;
    returns the keys of the nodes that finished."""
    runs = node_runs(uri)
    assert not [r.data.tags["node_kind"] for r in runs if r.info.status == "RUNNING"]  # nothing left looking alive
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert killed and all("SIGTERM" in r.data.tags["killed"] for r in killed)
    (parent,) = sweep_runs(uri)
    assert parent.info.status == "KILLED" and "SIGTERM" in parent.data.tags["killed"]
    done = {r.data.tags["node_key"] for r in runs if r.info.status == "FINISHED"}
    # A node a worker recorded that the driver had not collected yet when the signal came is in the store (the rerun
    # finds it cached), not in the summary: the summary holds what the driver saw finish.
    assert len(done) >= 1 and stopped["nodes"]["executed"] <= len(done) and stopped["nodes"]["total"] == NODES
    return done


def assert_resumed(uri: str, resumed: dict, done: set[str]) -> None:
    assert resumed["nodes"] == {"total": NODES, "executed": NODES - len(done), "cached": len(done), "failed": 0}
    counts = finished_once(uri)
    assert len(counts) == NODES and set(counts.values()) == {1}  # nothing computed twice, nothing lost
    assert not [r for r in node_runs(uri) if r.info.status == "RUNNING"]


def test_sigterm_to_a_driver_on_its_own_ray_ends_the_sweep_cleanly_and_the_same_command_resumes_it(tmp_path):
    sweep, uri = small_sweep(tmp_path, train__epochs=20), f"sqlite:///{tmp_path / 'mlflow.db'}"
    temp = f"/tmp/rs-{secrets.token_hex(3)}"  # short: Ray's socket paths must stay under 108 characters
    env = {"UNLEARN_SWEEP_CACHE": str(tmp_path / "cache"), "RAY_TMPDIR": temp}
    try:
        first = Driver(tmp_path, sweep, uri, "--executor", "ray", "--workers", "2", env=env, name="first")
        first.until(lambda: under_way(uri))
        began = time.monotonic()
        first.signal(signal.SIGTERM)
        assert first.wait() == 128 + signal.SIGTERM, first.output()[-3000:]
        ended = time.monotonic() - began
        print(f"SIGTERM to exit: {ended:.1f} s")
        assert "SIGTERM: stopping the sweep" in first.output()
        # Within Ray's default grace for a job (RAY_JOB_STOP_WAIT_TIME_S, 3 s) with room to spare on a busy machine.
        assert ended < 30, ended
        assert not ray_processes(temp), "the driver left its Ray running"
        done = assert_stopped_cleanly(uri, first.result())

        second = Driver(tmp_path, sweep, uri, "--executor", "ray", "--workers", "2", env=env, name="second")
        assert second.wait() == 0, second.output()[-3000:]
        assert_resumed(uri, second.result(), done)
        assert not ray_processes(temp)
    finally:
        for pid in ray_processes(temp):  # only this test's Ray, found by its own temp dir
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_head(tmp_path):
    """`ray start --head` on loopback with token authentication, as tests/test_ray_job.py starts it (its own session,
    ended with its process group), and the environment a submitting shell would have."""
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),  # the job's driver runs this checkout's code, as an installed package would
        # How long `ray job stop` waits after its SIGTERM before it SIGKILLs the job (Ray's default: 3 s), read by
        # the job's supervisor, a process of the head: room for a machine as busy as a shared CI runner.
        "RAY_JOB_STOP_WAIT_TIME_S": "30",
    }
    dashboard, temp = free_port(), Path(f"/tmp/ray-{secrets.token_hex(3)}")
    command = [
        RAY,
        "start",
        "--head",
        "--block",
        "--num-cpus",
        "2",
        "--port",
        str(free_port()),
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard),
        "--temp-dir",
        str(temp),
        "--disable-usage-stats",
    ]
    address, log = f"http://127.0.0.1:{dashboard}", tmp_path / "head.log"
    try:
        for _ in range(3):  # on a busy machine the raylet may miss Ray's 30 s to register, and the head exits
            with server(command, f"{address}/api/version", log, env=env, timeout=180) as head:
                while head.poll() is None and "Ray runtime started" not in log.read_text(errors="replace"):
                    time.sleep(0.5)  # the dashboard answers before the node has started
                if head.poll() is None:
                    yield address, env
                    return
        pytest.fail(f"ray start did not start:\n{log.read_text(errors='replace')[-3000:]}")
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def job(ray_head, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    address, env = ray_head
    command = [RAY, "job", *args[:1], "--address", address, *args[1:]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_ray_job_stop_ends_a_submitted_sweep_cleanly_and_submitting_it_again_resumes_it(ray_head, tmp_path):
    project = tmp_path / "project"  # what --working-dir ships to the cluster
    project.mkdir()
    small_sweep(project, train__epochs=20, tracking__artifact_location=str(tmp_path / "artifacts"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def submit(name: str, *extra: str) -> subprocess.CompletedProcess:
        entrypoint = ["unlearn-sweep", "run", "sweep.yaml", "--executor", "ray", "--address", "auto"]
        options = ["--tracking-uri", uri, "--summary", str(tmp_path / f"{name}.json"), "--no-report"]
        return job(
            ray_head, "submit", "--submission-id", name, "--working-dir", str(project), *extra,
            "--", *entrypoint, *options,
        )  # fmt: skip

    deadline = time.monotonic() + 120
    while "No available agent" in (done := submit("first", "--no-wait")).stderr and time.monotonic() < deadline:
        time.sleep(2)  # the head's job agent starts after its dashboard answers, later on a busy machine
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 300
    while not under_way(uri):
        assert time.monotonic() < deadline, job(ray_head, "logs", "first").stdout[-3000:]
        time.sleep(0.2)
    stopped = job(ray_head, "stop", "first")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    logs = job(ray_head, "logs", "first").stdout
    assert "SIGTERM: stopping the sweep" in logs, logs[-3000:]
    assert " cached, 0 failed in " in " ".join(logs.split()), logs[-3000:]  # it ended on its own, not SIGKILLed
    done = assert_stopped_cleanly(uri, json.loads((tmp_path / "first.json").read_text()))

    again = submit("second")  # the same command again, waiting for it this time
    out = again.stdout + again.stderr
    assert again.returncode == 0 and "succeeded" in out, out[-3000:]
    assert_resumed(uri, json.loads((tmp_path / "second.json").read_text()), done)


def test_ray_workers_never_see_the_drivers_mlflow_run_id(tmp_path):
    sweep, uri = small_sweep(tmp_path), f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)  # an unrelated run, in the sweep's own experiment, that a shell left in MLFLOW_RUN_ID
    experiment = client.create_experiment("unlearn-sweep", artifact_location=str(tmp_path / "artifacts"))
    unrelated = client.create_run(experiment, tags={"purpose": "unrelated"}).info.run_id
    probe = tmp_path / "probe"
    probe.mkdir()
    hook = {"runtime_env": {"worker_process_setup_hook": "tests.fault.ray_hooks.note_mlflow_environment"}}
    env = {
        "MLFLOW_RUN_ID": unrelated,
        "MLFLOW_EXPERIMENT_ID": experiment,
        "MLFLOW_EXPERIMENT_NAME": "unrelated",
        "FAULT_PROBE": str(probe),
        "RAY_TMPDIR": f"/tmp/rs-{secrets.token_hex(3)}",
        "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(hook),  # as `ray job submit --runtime-env-json` passes it on
    }
    try:
        driver = Driver(tmp_path, sweep, uri, "--executor", "ray", "--workers", "2", env=env)
        assert driver.wait() == 0, driver.output()[-3000:]
    finally:
        for pid in ray_processes(env["RAY_TMPDIR"]):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)

    env_names = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
    seen = [json.loads(path.read_text()) for path in probe.glob("*.json")]
    assert len(seen) == NODES  # every node ran in a worker the hook was in
    assert all(s == dict.fromkeys(env_names, None) for s in seen)
    run = client.get_run(unrelated)
    assert run.info.status == "RUNNING" and not run.data.metrics and not run.data.params
    assert set(run.data.tags) - {"purpose"} <= {t for t in run.data.tags if t.startswith("mlflow.")}
    assert not [r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId") == unrelated]
    (parent,) = sweep_runs(uri)
    runs = node_runs(uri)
    assert len(runs) == NODES and {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert not client.list_artifacts(unrelated) and client.get_experiment_by_name("unrelated") is None


def test_the_local_executor_drops_an_inherited_mlflow_run_id_too(tmp_path, monkeypatch):
    from orchestrator.cli import main
    from orchestrator.execute.worker import NodeWorker

    from .ray_hooks import note_mlflow_environment

    sweep, uri = small_sweep(tmp_path, memorization__num_models=2), f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("unlearn-sweep", artifact_location=str(tmp_path / "artifacts"))
    unrelated = client.create_run(experiment, tags={"purpose": "unrelated"}).info.run_id
    probe = tmp_path / "probe"
    probe.mkdir()
    for name, value in (("MLFLOW_RUN_ID", unrelated), ("MLFLOW_EXPERIMENT_ID", experiment), ("FAULT_PROBE", probe)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(NodeWorker, "run", NodeWorker.run)  # the probe below wraps it; restored after the test
    note_mlflow_environment()
    summary = tmp_path / "summary.json"
    args = ["run", str(sweep), "--tracking-uri", uri, "--summary", str(summary), "--no-report", "--threads", "1"]
    threads = __import__("torch").get_num_threads()
    try:
        assert main(args) == 0
    finally:
        __import__("torch").set_num_threads(threads)

    seen = [json.loads(path.read_text()) for path in probe.glob("*.json")]
    total = json.loads(summary.read_text())["nodes"]["total"]
    assert len(seen) == total and all(s["MLFLOW_RUN_ID"] is None and s["MLFLOW_EXPERIMENT_ID"] is None for s in seen)
    run = client.get_run(unrelated)
    assert run.info.status == "RUNNING" and not run.data.metrics and not run.data.params
    assert not [r for r in all_runs(uri) if r.data.tags.get("mlflow.parentRunId") == unrelated]
    (parent,) = sweep_runs(uri)
    assert {r.data.tags["mlflow.parentRunId"] for r in node_runs(uri)} == {parent.info.run_id}
