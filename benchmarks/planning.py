"""What a sweep costs when it computes nothing, each command as a user runs it (the real CLI in a fresh process):

- a re-run of the quickstart whose sweep already finished in the store (reused: nothing recorded, no torch imported);
- the same re-run told to record itself as a new sweep (`--record-again`: plan, 175 lookups, a link run per node, a
  result run per model and seed, the report drawn), the path every cached re-run took before;
- `plan` of the quickstart, and of the 229-node CIFAR-10 study;
- the quick commands that only read the record: `--version`, `status`, `cache ls`, `compare`;

against the floor a process that plans pays here, `python -c "import torch, mlflow.tracking"`. Interleaved repeats,
median wall time.

    python benchmarks/planning.py              # tiny quickstart store (same DAG shape, 41 nodes), 3 repeats
    python benchmarks/planning.py --store DIR  # a folder holding mlflow.db of a real quickstart run (175 nodes)

The quickstart's store is filled first (not timed) with the tests' tiny quickstart: the cached path's cost is the
number of nodes, not their size. The study is planned against an empty store (every lookup a miss: the same query
per node) on CIFAR-10 files written here in the official layout with random images (no download), with the
compute estimate off (`--no-estimate`; it times ResNet steps the first time).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
STUDY = REPO / "configs" / "sweeps" / "cifar10_resnet18_study.yaml"


def wall(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def fake_cifar10(root: Path) -> None:
    """50,000 + 10,000 random images in the official pickled batches (md5 checks off: they are not the release)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{b}", 10_000) for b in range(1, 6)] + [("test_batch", 10_000)]:
        entry = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": list(map(int, rng.integers(0, 10, n))),
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--store", type=Path, default=None, help="folder with mlflow.db of a real quickstart run")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="planning-bench-"))
    env = {**os.environ, "UNLEARN_SWEEP_CACHE": str(folder / "cache"), "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "orchestrator"]

    store = args.store or folder
    sweep = REPO / "configs" / "sweeps" / "quickstart.yaml"
    if args.store is None:
        from tests.conftest import tiny_quickstart

        sweep = tiny_quickstart(folder / "quickstart.yaml", tracking__artifact_location=str(folder / "artifacts"))
        wall(cli + ["run", str(sweep), "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"], folder, env)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    fake_cifar10(folder / "cifar10")
    study = cli + [
        "plan",
        str(STUDY),
        f"dataset.args.root={folder / 'cifar10'}",
        "dataset.args.verify=false",
        "--tracking-uri",
        f"sqlite:///{folder / 'study.db'}",
        "--no-estimate",
    ]
    commands = {
        "imports alone (torch, mlflow.tracking)": [sys.executable, "-c", "import torch, mlflow.tracking"],
        "quickstart re-run, its sweep finished (reused)": cli
        + ["run", str(sweep), "--tracking-uri", uri, "--summary", str(folder / "again.json")],
        "quickstart re-run, recorded anew (--record-again)": cli
        + ["run", str(sweep), "--tracking-uri", uri, "--summary", str(folder / "anew.json"), "--record-again"],
        "quickstart, plan": cli + ["plan", str(sweep), "--tracking-uri", uri, "--no-estimate"],
        # The quick commands: on a local sqlite store none imports torch or MLflow (tests/test_rerun.py).
        "--version": cli + ["--version"],
        "status": cli + ["status", "--tracking-uri", uri],
        "cache ls": cli + ["cache", "ls", "--tracking-uri", uri],
        "compare (a sweep with itself)": cli
        + ["compare", str(folder / "anew.json"), str(folder / "anew.json"), "--tracking-uri", uri],
        "study (229 nodes), plan": study,
    }
    wall(study, folder, env)  # the first plan reads the data once and caches its labels; users pay that once
    wall(
        commands["quickstart re-run, recorded anew (--record-again)"], folder, env
    )  # a sweep with this code's fingerprint
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(wall(command, folder, env))
    import torch

    from workloads.runtime import cpu_model

    print(
        f"CPU {cpu_model()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}, "
        f"{args.repeats} repeats"
    )
    floor = statistics.median(times["imports alone (torch, mlflow.tracking)"])
    reused = statistics.median(times["quickstart re-run, its sweep finished (reused)"])
    print("| command | median wall s | beyond the import floor s | × the reused re-run |\n|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median - floor:+.2f} | {median / reused:.1f}x |")


if __name__ == "__main__":
    main()
