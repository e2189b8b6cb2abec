"""The `ray` executor against the `local` executor on the same sweep, and what scheduling costs per node.

Each measurement runs `unlearn-sweep run` as a user would, in a fresh process with a fresh sqlite MLflow store in a
temporary folder, and reads the per-node compute time (`node_seconds`, the handler alone) back from MLflow.

    python benchmarks/executors.py speedup     # the quickstart (memorization in 2 shards) with local vs ray --workers 2
    python benchmarks/executors.py speedup --model small   # a small CNN and a grid: 73 nodes (also --model mlp)
    python benchmarks/executors.py overhead    # 48 then 96 relearn nodes of about 1 s each, local and ray --workers 2

speedup: the wall time of each executor from start to summary.json, and local / ray.
overhead: parents are computed first (not timed), then two sweeps whose only new nodes are short relearn nodes
(48, then 96 more). Overhead = 1 - (sum of node_seconds) / (workers * sweep wall): the share of the workers' time
not spent computing nodes (claims, dispatch, recording runs and artifacts, results coming back). Per added node, it
is taken from the difference between the two sweeps, which cancels fixed start-up (Ray's workers starting, each
importing torch and loading the data); the figure including start-up is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "configs" / "sweeps" / "quickstart.yaml"
# The quickstart, shorter; the same with a small CNN (16/32 channels) or an MLP (128, 128) and a grid of 10 unlearning
# settings (73 nodes). The MLP's nodes gain nothing from a second thread, the quickstart CNN's gain 1.4x.
SPEEDUP = {
    "quickstart": ["memorization.shards=2", "train.epochs=40", "memorization.train.epochs=15", "relearn.epochs=40"],
    "small": [
        "model.args.channels=[16, 32]",
        "model.args.hidden=64",
        "memorization.shards=2",
        "train.epochs=60",
        "memorization.train.epochs=20",
        "relearn.epochs=60",
        "methods.1.grid={lr: [3.0e-3, 1.0e-2, 3.0e-2]}",
        "methods.3.grid={sigma: [0.05, 0.1, 0.15, 0.3]}",
    ],
    "mlp": [
        "memorization.shards=2",
        "train.epochs=400",
        "memorization.train.epochs=120",
        "relearn.epochs=400",
        "methods.1.grid={lr: [3.0e-3, 1.0e-2, 3.0e-2]}",
        "methods.3.grid={sigma: [0.05, 0.1, 0.15, 0.3]}",
    ],
}
# Many short nodes: relearning attacks for many values of k on the original, the control and one unlearned model.
OVERHEAD = [
    "methods=[{name: neggrad_plus, hparams: {lr: 1.0e-2, epochs: 1.5}}]",
    "forget.criterion=random",
    "train.epochs=20",
    "relearn.epochs=4",
    "relearn.eval_every=4",
    "relearn.report_last=1",
]


MODELS = {"mlp": {"name": "mlp", "args": {"hidden": [128, 128]}}}  # a whole section, which key=value would merge into


def run(
    folder: Path, overrides: list[str], *flags: str, env: dict | None = None, model: str = ""
) -> tuple[float, dict]:
    sweep = QUICKSTART
    if model in MODELS:
        from omegaconf import OmegaConf

        config = OmegaConf.load(QUICKSTART)
        config.model = MODELS[model]
        sweep = folder / "sweep.yaml"
        sweep.write_text(OmegaConf.to_yaml(config))
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(sweep),
            *overrides,
            "--tracking-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--summary",
            str(folder / "summary.json"),
            *flags,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"sweep failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, json.loads((folder / "summary.json").read_text())


def node_seconds(folder: Path, sweep_id: str) -> tuple[float, int]:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("unlearn-sweep")
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.sweep_id = '{sweep_id}' and tags.node_kind != 'sweep' and attributes.status = 'FINISHED'",
        max_results=5000,
    )
    return sum(r.data.metrics["node_seconds"] for r in runs), len(runs)


def speedup(model: str) -> None:
    """local (torch on both cores), local on one thread (what each 1-CPU Ray worker gets), ray with 2 workers."""
    walls = {}
    for name, flags, env in (
        ("local", (), None),
        ("local-1-thread", (), {"OMP_NUM_THREADS": "1"}),
        ("ray", ("--executor", "ray", "--workers", "2"), None),
    ):
        with tempfile.TemporaryDirectory() as folder:
            walls[name], summary = run(Path(folder), SPEEDUP[model], *flags, env=env, model=model)
            busy, nodes = node_seconds(Path(folder), summary["sweep_id"])
        print(
            f"{name:14s}: {nodes} nodes, wall {walls[name]:6.1f} s (sweep {summary['wall_seconds']:.1f} s), "
            f"sum of node compute {busy:6.1f} s",
            flush=True,
        )
    print(
        f"ray (2 workers) over local: {walls['local'] / walls['ray']:.2f}x; "
        f"over local on one thread: {walls['local-1-thread'] / walls['ray']:.2f}x"
    )


def overhead() -> None:
    ks = lambda lo, hi: f"relearn.k=[{', '.join(str(k) for k in range(lo, hi))}]"
    for name, flags, workers in (("local", (), 1), ("ray", ("--executor", "ray", "--workers", "2"), 2)):
        with tempfile.TemporaryDirectory() as folder:
            run(Path(folder), OVERHEAD + ["relearn.k=[0]"])  # the parents, locally, untimed
            measured = []
            for sweep_ks in (ks(1, 17), ks(17, 49)):  # 48 then 96 new relearn nodes
                _, summary = run(Path(folder), OVERHEAD + [sweep_ks], *flags)
                measured.append((summary["wall_seconds"], *node_seconds(Path(folder), summary["sweep_id"])))
        (wall_s, busy_s, n_s), (wall_l, busy_l, n_l) = measured
        marginal = 1 - (busy_l - busy_s) / (workers * (wall_l - wall_s))
        print(
            f"{name:5s}: {n_s} then {n_l} new nodes of {busy_l / n_l:.2f} s compute each; sweep wall {wall_s:.1f} s, "
            f"{wall_l:.1f} s; overhead per added node {marginal:.1%} of worker time; including start-up "
            f"{1 - busy_l / (workers * wall_l):.1%} of the {n_l}-node sweep",
            flush=True,
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speedup", "overhead"])
    ap.add_argument("--model", choices=list(SPEEDUP), default="quickstart", help="speedup: which sweep")
    args = ap.parse_args()
    speedup(args.model) if args.what == "speedup" else overhead()
