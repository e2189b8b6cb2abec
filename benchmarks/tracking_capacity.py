"""The tracking layer's capacity: how many nodes per second one MLflow server records, and so how large a cluster it
can serve.

The benchmark starts a real stack on loopback itself: a throwaway PostgreSQL 15 cluster (or a sqlite file), an `mlflow
server` on it (`--server-workers` uvicorn workers, 1 by default as in tests/servers.py) and moto's S3 server as the
artifact store. Then, for each N in `--workers`, N worker processes (a fresh experiment per N) each record
`--nodes-per-worker` short real nodes, one after another, through the orchestrator's own code path, which is the one a
sweep's scheduler and its NodeWorker take for a node that is not in the store:

  lookup  `Artifacts.find(key)`: the scheduler's look-up of the node's content key before claiming it (not found)
  claim   `Claims.claim(node, sweep_id, parent)`: the node's run created with its tags, the claim search, its params
          and its dataset input
  record  `Artifacts.record(run_id, output, seconds)`: tags, metrics and a short curve, result.json, a tiny model's
          checkpoint and the manifest uploaded to S3, the run FINISHED
  heartbeat  the scheduler's `Heartbeat` thread on the run in flight (every UNLEARN_SWEEP_HEARTBEAT_SECONDS, 10 s)

A node's compute is a few SGD steps of a 40-in, 10-out linear model (milliseconds): the store is the bottleneck. All
N workers belong to one sweep (one parent run, one sweep id), as the actors of one Ray sweep do, so no claim waits
the 1 s that a claim makes when another sweep is live (claims.py SETTLE_SECONDS). Each worker counts every HTTP
request MLflow's REST client sends (`mlflow.utils.rest_utils.http_request`, by method and endpoint) and every S3 call
boto3 makes (`BaseClient._make_api_call`, by operation), per phase.

Reported: store calls per node by kind; nodes per second sustained (all N*K nodes over the wall time from the moment
every worker was ready to the last one done); p50/p90/p99 latency of a claim (lookup + claim) and of a record; and,
from the saturated throughput, the largest cluster one server sustains for nodes of 30 s, 1 min and 10 min, heartbeats
included. The server, PostgreSQL, moto and the workers share this machine's cores: on a small machine the figures are
a lower bound of what a server with cores of its own sustains.

    python benchmarks/tracking_capacity.py                           # N = 1,2,4,8,16, 20 nodes each, PostgreSQL
    python benchmarks/tracking_capacity.py --backend sqlite --workers 1,4
    python benchmarks/tracking_capacity.py --smoke                   # tiny: every code path, figures meaningless
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # last: a checkout PYTHONPATH names comes first (another version's, to compare)
    sys.path.append(str(REPO))

BUCKET = "capacity"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
DATASET = {"name": "mnist1d", "args": {"num_samples": 6000, "seed": 42}}
DURATIONS = {"30 s": 30.0, "1 min": 60.0, "10 min": 600.0}
PHASES = ("lookup", "claim", "record", "heartbeat")


# -- the worker: one process recording nodes through the orchestrator's code path ---------------------------------
@dataclass(frozen=True)
class Config:
    """A node's typed config as the record sees it (`as_dict()`: its params and its dataset input)."""

    values: dict

    def as_dict(self) -> dict:
        return self.values


@dataclass(frozen=True)
class SyntheticNode:
    """A TrackedNode (orchestrator/track/node.py) with a content key of its own: an unlearn node of one method."""

    key: str
    label: str
    parent_key: str
    kind: str = "unlearn"
    slot: str = "unlearn/neggrad_plus/seed0"
    config: Config = field(
        default_factory=lambda: Config(
            {"dataset": DATASET, "method": "neggrad_plus", "hparams": {"lr": 0.01, "epochs": 1.5}, "seed": 0}
        )
    )
    about: dict = field(default_factory=lambda: {"method": "neggrad_plus", "hparams": {"lr": 0.01}, "seed": 0})

    @property
    def input_keys(self) -> dict[str, str]:
        return {"model": self.parent_key}


class Counting:
    """Counts the store's calls in this process, per phase: the worker's loop sets `phase`, which the threads boto3
    uploads in count under; the heartbeat thread has a phase of its own (`thread_phase`)."""

    def __init__(self):
        self.local = threading.local()
        self.phase = "setup"
        self.calls: Counter = Counter()  # (phase, call) -> count
        self.lock = threading.Lock()

    def count(self, call: str) -> None:
        with self.lock:
            self.calls[(getattr(self.local, "phase", self.phase), call)] += 1

    def install(self) -> None:
        import botocore.client
        from mlflow.utils import rest_utils

        http_request = rest_utils.http_request

        def counted_http(host_creds, endpoint, method, *args, **kwargs):
            self.count(f"{method} {endpoint.split('/mlflow/', 1)[-1]}")
            return http_request(host_creds, endpoint, method, *args, **kwargs)

        rest_utils.http_request = counted_http  # call_endpoint looks it up in its module at each call
        make_api_call = botocore.client.BaseClient._make_api_call

        def counted_s3(client, operation_name, api_params):
            self.count(f"S3 {operation_name}")
            return make_api_call(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counted_s3


def tiny_output(seed: int):
    """What a node's handler returns: metrics, a curve, a JSON result and a tiny model's state."""
    import torch

    from workloads.runtime import runtime_facts

    torch.manual_seed(seed)
    model = torch.nn.Linear(40, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 40), torch.randint(0, 10, (64,))
    curve = []
    for step in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append((step, float(loss)))
    accuracy = float((model(x).argmax(1) == y).float().mean())
    result = {"accuracy": accuracy, "loss": curve[-1][1], "runtime": runtime_facts(torch.device("cpu"))}
    metrics = {"accuracy": accuracy, "loss": curve[-1][1], "forget_accuracy": accuracy}
    return SimpleNamespace(
        metrics=metrics, curves={"loss": curve}, result=result, state=model.state_dict(), tensors=None
    )


def worker(args) -> None:
    counting = Counting()
    counting.install()
    from orchestrator.execute.scheduler import Heartbeat
    from orchestrator.track import Tracker

    tracker = Tracker(args.uri, args.experiment)
    in_flight: list[str] = []
    heartbeat = Heartbeat(tracker, lambda: list(in_flight))
    heartbeat_run = heartbeat.run

    def beat():
        counting.local.phase = "heartbeat"
        heartbeat_run()

    heartbeat.run = beat

    def one(i: int):
        """One node: looked up, claimed, computed, recorded; the claim's and the record's latency (s)."""
        key = hashlib.sha256(f"{args.experiment}/{args.index}/{i}".encode()).hexdigest()
        node = SyntheticNode(key, f"unlearn-{args.index}-{i}", hashlib.sha256(key.encode()).hexdigest())
        t0 = time.perf_counter()
        counting.phase = "lookup"
        assert tracker.artifacts.find(node.key) is None
        counting.phase = "claim"
        claim = tracker.claims.claim(node, args.sweep_id, args.parent)
        t1 = time.perf_counter()
        assert claim.run_id is not None  # every key is new and every worker is of one sweep
        in_flight.append(claim.run_id)
        counting.phase = "compute"
        c0 = time.perf_counter()
        output = tiny_output(args.index * 100_000 + i)
        seconds = time.perf_counter() - c0
        counting.phase = "record"
        t2 = time.perf_counter()
        tracker.artifacts.record(claim.run_id, output, seconds, artifact_uri=claim.artifact_uri)  # as a NodeWorker
        t3 = time.perf_counter()
        in_flight.remove(claim.run_id)
        return t1 - t0, t3 - t2

    one(-1)  # a warm-up node (first calls: the S3 client, torch, imports), not counted: a worker lives long
    counting.calls.clear()
    Path(args.ready).touch()
    while not Path(args.go).exists():
        time.sleep(0.01)
    heartbeat.start()
    latency: dict[str, list[float]] = {"claim": [], "record": []}
    started = time.time()
    for i in range(args.nodes):
        claim_s, record_s = one(i)
        latency["claim"].append(claim_s)
        latency["record"].append(record_s)
    ended = time.time()
    heartbeat.stop.set()
    calls: dict[str, dict[str, int]] = {}
    for (phase, call), n in counting.calls.items():
        calls.setdefault(phase, {})[call] = n
    Path(args.out).write_text(json.dumps({"latency": latency, "calls": calls, "started": started, "ended": ended}))


# -- the stack: PostgreSQL or sqlite, mlflow server, moto S3 --------------------------------------------------------
@contextmanager
def stack(folder: Path, backend: str, server_workers: int):
    import boto3

    from tests.servers import (
        MLFLOW_SERVER_ENV,
        free_port,
        mlflow_command,
        moto_s3,
        postgres,
        postgres_available,
        server,
    )

    with ExitStack() as stack:
        endpoint = stack.enter_context(moto_s3(folder))
        env = {**CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": endpoint}
        boto3.client("s3", endpoint_url=endpoint, **_boto_credentials()).create_bucket(Bucket=BUCKET)
        if backend == "postgres":
            if not postgres_available():
                sys.exit("no PostgreSQL 15 binaries (set UNLEARN_SWEEP_POSTGRES_BIN): use --backend sqlite")
            backend_uri = stack.enter_context(postgres())()
        else:
            backend_uri = f"sqlite:///{folder / 'server.db'}"
        port = free_port()
        command = mlflow_command(folder, f"s3://{BUCKET}/artifacts", port, backend_uri, server_workers)
        # Without MLflow's job runner and its seven huey consumers (GenAI jobs, no part of tracking): their start-up
        # took 30 s of CPU inside the first point, and a lab that runs them gives them cores of their own.
        process = stack.enter_context(
            server(
                command,
                f"http://127.0.0.1:{port}/health",
                folder / "mlflow-server.log",
                {**env, **MLFLOW_SERVER_ENV},
                timeout=600,
            )
        )
        yield f"http://127.0.0.1:{port}", {**os.environ, **env}, process.pid  # its own session: pgid = pid


def cpu_seconds(pgid: int | None = None, name: str | None = None) -> float:
    """CPU time (user + system, and that of reaped children) of the live processes in process group `pgid`, or named
    `name`: the server's uvicorn workers are in its group; PostgreSQL's backends are all named `postgres`."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended while read
            continue
        comm, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if (pgid is not None and int(fields[2]) == pgid) or (name is not None and comm == name):
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def _boto_credentials() -> dict:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


# -- one point: N workers ---------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def point(folder: Path, uri: str, env: dict, server_pgid: int, n: int, nodes: int, sweeps: int, label: str) -> dict:
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "MLFLOW_S3"))})
    from mlflow.tracking import MlflowClient

    from orchestrator.track import Tracker
    from orchestrator.track.tags import HEARTBEAT, SWEEP

    experiment = f"capacity-{label}-n{n}-s{sweeps}"
    tracker = Tracker(uri, experiment)
    parents = []  # (sweep id, parent run): the workers are dealt to them in turn
    for s in range(sweeps):
        sweep_id = hashlib.sha256(f"{experiment}/{s}".encode()).hexdigest()[:16]
        tags = {"node_kind": SWEEP, "sweep_id": sweep_id, HEARTBEAT: str(time.time()), "sweep_name": experiment}
        run = tracker.store.client.create_run(tracker.store.experiment_id, run_name=f"{experiment}-{s}", tags=tags)
        parents.append((sweep_id, run.info.run_id))
    here = folder / experiment
    here.mkdir()
    go = here / "go"
    workers = []
    for index in range(n):
        command = [sys.executable, __file__, "--worker", "--uri", uri, "--experiment", experiment]
        sweep_id, parent = parents[index % sweeps]
        command += ["--sweep-id", sweep_id, "--parent", parent, "--index", str(index), "--nodes-per-worker", str(nodes)]
        command += ["--ready", str(here / f"ready{index}"), "--go", str(go), "--out", str(here / f"out{index}.json")]
        with open(here / f"worker{index}.log", "wb") as log:  # the child keeps its own descriptor
            # One thread each: a node's compute is a few milliseconds, and the cores are the server's to use.
            env = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO), "OMP_NUM_THREADS": "1"}
            process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        workers.append((process, here / f"worker{index}.log"))
    deadline = time.monotonic() + 300
    while not all((here / f"ready{index}").exists() for index in range(n)):
        if any(p.poll() not in (None, 0) for p, _ in workers) or time.monotonic() > deadline:
            sys.exit(f"a worker did not start:\n{(here / 'worker0.log').read_text()[-3000:]}")
        time.sleep(0.05)
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(pgid=server_pgid), cpu_seconds(name="postgres")
    start = time.time()
    go.touch()
    for process, log in workers:
        if process.wait() != 0:
            sys.exit(f"a worker failed:\n{log.read_text()[-3000:]}")
    server_cpu = cpu_seconds(pgid=server_pgid) - cpu_before[0]
    postgres_cpu = cpu_seconds(name="postgres") - cpu_before[1]
    outs = [json.loads((here / f"out{index}.json").read_text()) for index in range(n)]
    wall = max(o["ended"] for o in outs) - start
    done = sum(len(o["latency"]["record"]) for o in outs)
    calls: dict[str, Counter] = {phase: Counter() for phase in PHASES}
    for o in outs:
        for phase, counted in o["calls"].items():
            if phase in calls:
                calls[phase].update(counted)
    heartbeats = sum(calls["heartbeat"].values())
    for _, parent in parents:
        tracker.store.client.set_terminated(parent, "FINISHED")
    claims = [x for o in outs for x in o["latency"]["claim"]]
    records = [x for o in outs for x in o["latency"]["record"]]
    finished = MlflowClient(uri).search_runs(
        [tracker.store.experiment_id], "attributes.status = 'FINISHED' and tags.node_kind = 'unlearn'", max_results=5000
    )
    assert len(finished) == done + n and done == n * nodes, (len(finished), done, n * nodes)  # + the warm-ups
    per_node = {phase: {call: count / done for call, count in sorted(c.items())} for phase, c in calls.items()}
    rest = sum(
        v for phase in ("lookup", "claim", "record") for k, v in per_node[phase].items() if not k.startswith("S3")
    )
    s3 = sum(v for phase in ("lookup", "claim", "record") for k, v in per_node[phase].items() if k.startswith("S3"))
    requests = rest * done + heartbeats
    return {
        "workers": n,
        "sweeps": sweeps,
        "nodes": done,
        "wall_s": wall,
        "nodes_per_s": done / wall,
        "claim_ms": {q: 1000 * percentile(claims, q) for q in (50, 90, 99)},
        "record_ms": {q: 1000 * percentile(records, q) for q in (50, 90, 99)},
        "rest_calls_per_node": rest,
        "s3_calls_per_node": s3,
        "rest_calls_per_s": rest * done / wall,
        "heartbeat_calls": heartbeats,
        # CPU time per REST request the server answered (heartbeats included), of the server and of PostgreSQL
        "server_cpu_ms_per_call": 1000 * server_cpu / requests,
        "postgres_cpu_ms_per_call": 1000 * postgres_cpu / requests,
        "calls_per_node": per_node,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


# -- capacity from the figures ------------------------------------------------------------------------------------
def capacity(points: list[dict], heartbeat_seconds: float) -> dict:
    """The largest cluster one server sustains: a worker running nodes of D seconds asks the server for C/D calls per
    second for its nodes (C: REST calls per node) plus 1/heartbeat_seconds for its run's heartbeat; the server answers
    at most R = (saturated nodes/s) x C calls per second. So W = R / (C/D + 1/heartbeat_seconds)."""
    best = max(points, key=lambda p: p["nodes_per_s"])
    c, r = best["rest_calls_per_node"], best["rest_calls_per_s"]
    out = {"saturated_nodes_per_s": best["nodes_per_s"], "at_workers": best["workers"], "rest_calls_per_node": c}
    out["server_calls_per_s"] = r
    out["workers"] = {name: r / (c / d + 1 / heartbeat_seconds) for name, d in DURATIONS.items()}
    out["workers_without_heartbeat"] = {name: best["nodes_per_s"] * d for name, d in DURATIONS.items()}
    # What one server core answers, from the server's own CPU time per request at that point: the projection for a
    # server machine whose cores are its own (`mlflow server --workers` = cores, PostgreSQL elsewhere), which this
    # machine, where the workers, PostgreSQL and moto share two cores with it, cannot show directly.
    per_core = 1000 / best["server_cpu_ms_per_call"]
    out["server_cpu_ms_per_call"], out["postgres_cpu_ms_per_call"] = (
        best["server_cpu_ms_per_call"],
        best["postgres_cpu_ms_per_call"],
    )
    out["calls_per_s_per_server_core"] = per_core
    out["workers_per_server_core"] = {name: per_core / (c / d + 1 / heartbeat_seconds) for name, d in DURATIONS.items()}
    return out


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    import mlflow
    import torch

    postgres = "?"
    try:
        from tests.servers import POSTGRES_BIN

        postgres = subprocess.run(
            [str(POSTGRES_BIN / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
        f"mlflow {mlflow.__version__}, {postgres or 'no PostgreSQL'}"
    )


def report(points: list[dict], cap: dict, backend: str, server_workers: int, heartbeat_seconds: float) -> None:
    sweeps = points[0]["sweeps"]
    print(
        f"\n## Tracking capacity: mlflow server ({server_workers} worker(s)) on {backend}, artifacts on moto S3, "
        f"the workers in {sweeps} sweep(s)\n"
    )
    print(
        "| N workers | nodes | wall (s) | nodes/s | claim p50 / p90 / p99 (ms) | record p50 / p90 / p99 (ms) | "
        "REST calls/node | S3 calls/node | REST calls/s | server / PostgreSQL CPU ms per call | load 1 min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for p in points:
        claim = " / ".join(f"{p['claim_ms'][q]:.0f}" for q in (50, 90, 99))
        record = " / ".join(f"{p['record_ms'][q]:.0f}" for q in (50, 90, 99))
        print(
            f"| {p['workers']} | {p['nodes']} | {p['wall_s']:.1f} | {p['nodes_per_s']:.2f} | {claim} | {record} | "
            f"{p['rest_calls_per_node']:.2f} | {p['s3_calls_per_node']:.2f} | {p['rest_calls_per_s']:.0f} | "
            f"{p['server_cpu_ms_per_call']:.1f} / {p['postgres_cpu_ms_per_call']:.1f} | "
            f"{p['load_before']:.1f} -> {p['load_after']:.1f} |"
        )
    print("\n### Store calls per node, by kind (all points together)\n")
    totals: dict[tuple[str, str], float] = Counter()
    nodes = sum(p["nodes"] for p in points)
    for p in points:
        for phase in ("lookup", "claim", "record"):
            for call, per in p["calls_per_node"][phase].items():
                totals[(phase, call)] += per * p["nodes"]
    print("| phase | call | per node |")
    print("|---|---|---|")
    for (phase, call), count in sorted(totals.items(), key=lambda x: (PHASES.index(x[0][0]), x[0][1])):
        print(f"| {phase} | {call} | {count / nodes:.2f} |")
    beats = sum(p["heartbeat_calls"] for p in points)
    print(f"| heartbeat | POST runs/set-tag | 1 per run in flight every {heartbeat_seconds:g} s ({beats} sent here) |")
    print(
        f"\n### Largest cluster one server sustains\n\nSaturated: {cap['saturated_nodes_per_s']:.2f} nodes/s at "
        f"N = {cap['at_workers']}, {cap['rest_calls_per_node']:.2f} REST calls per node, so "
        f"R = {cap['server_calls_per_s']:.0f} calls/s. A worker whose nodes last D s asks for "
        f"C/D + 1/{heartbeat_seconds:g} calls/s (heartbeat included): W = R / (C/D + 1/heartbeat).\n"
    )
    print(
        f"Per server core (projected from the server's {cap['server_cpu_ms_per_call']:.1f} CPU ms per call, "
        f"PostgreSQL's {cap['postgres_cpu_ms_per_call']:.1f} ms on top): {cap['calls_per_s_per_server_core']:.0f} "
        "calls/s.\n"
    )
    print("| node duration | workers (heartbeat included) | workers (nodes only: nodes/s x D) | per server core |")
    print("|---|---|---|---|")
    for name in DURATIONS:
        print(
            f"| {name} | {cap['workers'][name]:.0f} | {cap['workers_without_heartbeat'][name]:.0f} | "
            f"{cap['workers_per_server_core'][name]:.0f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2,4,8,16", help="comma-separated N (concurrent worker processes)")
    ap.add_argument("--nodes-per-worker", type=int, default=20)
    ap.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--server-workers", type=int, default=1, help="mlflow server --workers")
    ap.add_argument(
        "--sweeps", type=int, default=1, help="deal the workers to this many concurrent sweeps (2: a lab's case)"
    )
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--smoke", action="store_true", help="N = 1,2 with 2 nodes each: every code path, quickly")
    # worker mode (the benchmark's own processes)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--uri", "--experiment", "--sweep-id", "--parent", "--ready", "--go", "--out"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    ap.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.nodes = args.nodes_per_worker
        worker(args)
        return
    if args.smoke:
        args.workers, args.nodes_per_worker = "1,2", 2
    from orchestrator.track import HEARTBEAT_SECONDS

    ns = [int(n) for n in args.workers.split(",")]
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    points = []
    with (
        tempfile.TemporaryDirectory(prefix="unlearn-sweep-capacity-") as folder,
        stack(Path(folder), args.backend, args.server_workers) as (uri, env, server_pgid),
    ):
        for n in ns:
            points.append(
                point(Path(folder), uri, env, server_pgid, n, args.nodes_per_worker, args.sweeps, args.backend)
            )
            p = points[-1]
            print(
                f"N={n}: {p['nodes']} nodes in {p['wall_s']:.1f} s, {p['nodes_per_s']:.2f} nodes/s, "
                f"claim p50 {p['claim_ms'][50]:.0f} ms, record p50 {p['record_ms'][50]:.0f} ms",
                flush=True,
            )
    cap = capacity(points, HEARTBEAT_SECONDS)
    report(points, cap, args.backend, args.server_workers, HEARTBEAT_SECONDS)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "backend": args.backend,
                    "server_workers": args.server_workers,
                    "points": points,
                    "capacity": cap,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
