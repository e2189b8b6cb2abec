"""Denormal flushing: the quickstart's original trained with and without `configure_torch`'s flag, side by side.

Each run is a fresh process (the flag must be set before torch starts its thread pool): the quickstart's CNN on
MNIST-1D through the project's own training path (`train_classifier`: Adam, cosine decay, weight decay 1e-4),
`--steps` steps in windows of `--window`; it prints ms/step of the first and last window (a converging model's
dead weights and Adam moments decay into the denormal range, which slows Intel CPUs), the total, and test accuracy.

    python benchmarks/denormals.py                 # 3000 steps, 2 threads, flag off then on, twice
    python benchmarks/denormals.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

RUN = """
import sys, time
flush, threads, steps, window = sys.argv[1] == "on", int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import torch
if flush:
    from workloads.runtime import configure_torch
    configure_torch(threads)
else:
    torch.set_num_threads(threads)
from workloads.config import typed
from workloads.data import load_dataset
from workloads.data.mnist1d import MNIST1DConfig
from workloads.models import MODELS, build_model
from workloads.runtime import flushes_in_every_thread
from workloads.train import TrainConfig, evaluate, train_classifier
d = load_dataset("mnist1d", MNIST1DConfig(), "cpu")
args = typed(MODELS.get("cnn1d").config, {"channels": [32, 64, 64], "hidden": 256}, "a")
model = build_model("cnn1d", args, d.input_shape, 10, 43)
epochs = steps / 38  # 4800 examples at batch 128: 38 steps a pass
marks = []
class Clock(torch.nn.Module):  # times windows of steps from inside the model's forward, no change to the loop
    def __init__(self, inner):
        super().__init__(); self.inner, self.calls = inner, 0
    def forward(self, x):
        if self.training:
            if self.calls % window == 0:
                marks.append(time.perf_counter())
            self.calls += 1
        return self.inner(x)
clocked = Clock(model)
start = time.perf_counter()
train_classifier(clocked, d.x_train, d.y_train, TrainConfig(epochs=epochs, lr=3e-3, weight_decay=1e-4), seed=43)
total = time.perf_counter() - start
windows = [(b - a) / window * 1e3 for a, b in zip(marks, marks[1:])]
print(flushes_in_every_thread(), windows[0], windows[-1], total, evaluate(model, d.x_test, d.y_test, 10)["acc"])
"""


def run(flag: str, args) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", RUN, flag, str(args.threads), str(args.steps), str(args.window)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    flushed, *numbers = out.stdout.split()
    return [flushed == "True", *map(float, numbers)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--window", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import torch

    sys.path.insert(0, str(REPO))
    from workloads.runtime import cpu_model

    print(
        f"CPU {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, "
        f"{args.steps} steps, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        "| flag | every thread flushed | first window ms/step | last window ms/step | last / first | total s "
        "| test acc |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    totals: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for flag in ("off", "on"):
            flushed, first, last, total, acc = run(flag, args)
            totals[flag].append(total)
            print(
                f"| {flag} | {flushed} | {first:.2f} | {last:.2f} | {last / first:.2f}x | {total:.1f} | {acc:.4f} |",
                flush=True,
            )
    print(f"\nflag off / on, total time: {sum(totals['off']) / sum(totals['on']):.2f}x")


if __name__ == "__main__":
    main()
