"""The memorization ensemble, vmapped against sequential, side by side in one process.

Trains the same M subset models of workloads.memorization (same seeds, masks, batch streams, number of steps) on
MNIST-1D both ways with `train_subset_models`, for each architecture asked for, and prints the median wall time of
each over interleaved repeats (after a warm-up of each), the ratio, the same for evaluating every model on every
training example, and the largest weight difference between the two ensembles (they are the same models).

    python benchmarks/memorization_ensemble.py                        # the table in BENCHMARKS.md
    python benchmarks/memorization_ensemble.py --threads 1 --batch-size 32 --archs cnn1d-small
    python benchmarks/memorization_ensemble.py --agreement     # how far the two paths' scores drift, quickstart setting
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from workloads.data import MNIST1DConfig, load_dataset
from workloads.memorization import MemorizationConfig, estimate_memorization, subset_masks, train_subset_models
from workloads.models import CNN1DConfig, MLPConfig, build_model
from workloads.train import TrainConfig

ARCHS = {  # name -> (registered model, its config)
    "cnn1d-quickstart": ("cnn1d", CNN1DConfig(channels=[32, 64, 64], hidden=256)),  # quickstart.yaml's model
    "cnn1d-small": ("cnn1d", CNN1DConfig(channels=[8, 16], hidden=32)),
    "cnn1d-tiny": ("cnn1d", CNN1DConfig(channels=[4, 8], hidden=16)),
    "mlp": ("mlp", MLPConfig(hidden=[64, 64])),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--archs", default="cnn1d-quickstart,cnn1d-small,cnn1d-tiny,mlp", help=f"comma-separated, of {sorted(ARCHS)}"
    )
    ap.add_argument("--models", type=int, default=32)
    ap.add_argument(
        "--steps",
        type=int,
        default=54,
        help="training steps of every model (54 = 2 passes over a 70%% subset at batch 128)",
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--agreement", action="store_true", help="instead: scores of vmap vs sequential vs sequential on 1 thread"
    )
    args = ap.parse_args()
    if args.agreement:
        return agreement()
    torch.set_num_threads(args.threads)

    data = load_dataset("mnist1d", MNIST1DConfig())
    x, y = data.x_train, data.y_train
    included = subset_masks(args.models, len(y), 0.7, 0)
    passes = -(-round(included.sum().item() / args.models) // args.batch_size)  # ceil(mean subset / batch)
    train = TrainConfig(epochs=args.steps / passes, batch_size=args.batch_size, lr=3e-3, weight_decay=1e-4)
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} threads, cuda: {torch.cuda.is_available()}, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# {args.models} models, {len(y)} MNIST-1D training examples, 70% subsets, {args.steps} steps at batch "
        f"{args.batch_size}, median of {args.repeats} interleaved repeats after a warm-up"
    )
    print(
        "| model | params/model | sequential train s | vmap train s | speed-up | sequential eval s | vmap eval s "
        "| speed-up | max abs weight diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arch in args.archs.split(","):
        name, cfg = ARCHS[arch]
        new_model = lambda seed, name=name, cfg=cfg: build_model(name, cfg, data.input_shape, data.num_classes, seed)
        size = sum(p.numel() for p in new_model(0).parameters())

        def run(vectorize: bool, steps: int = args.steps, new_model=new_model):
            mem = MemorizationConfig(
                num_models=args.models,
                vectorize=vectorize,
                train=TrainConfig(**{**train.__dict__, "epochs": steps / passes}),
            )
            start = time.perf_counter()
            ensemble = train_subset_models(new_model, x, y, included, mem, data.augment)
            trained = time.perf_counter()
            ensemble.logits(x)
            return ensemble, trained - start, time.perf_counter() - trained

        for vectorize in (True, False):
            run(vectorize, steps=3)  # warm-up: functorch's first vmap, allocator, kernels
        times: dict[bool, list] = {True: [], False: []}
        for r in range(args.repeats):
            for vectorize in (True, False) if r % 2 == 0 else (False, True):
                ensemble, t_train, t_eval = run(vectorize)
                times[vectorize].append((t_train, t_eval))
                if vectorize:
                    vmapped = ensemble
                else:
                    sequential = ensemble
        assert (vmapped.mode, sequential.mode) == ("vmap", "sequential"), vmapped.message
        diff = max((vmapped.params[k] - sequential.params[k]).abs().max().item() for k in vmapped.params)
        med = {v: [statistics.median(t[i] for t in times[v]) for i in (0, 1)] for v in times}
        print(
            f"| {arch} | {size:,} | {med[False][0]:.2f} | {med[True][0]:.2f} | {med[False][0] / med[True][0]:.2f}x "
            f"| {med[False][1]:.3f} | {med[True][1]:.3f} | {med[False][1] / med[True][1]:.2f}x | {diff:.1e} |",
            flush=True,
        )
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


def agreement() -> None:
    """The quickstart's memorization (16 of its CNNs, 40 epochs) by vmap and sequentially on 2 threads, and
    sequentially on 1 thread: float rounding differs in each, and long training amplifies it."""
    data = load_dataset("mnist1d", MNIST1DConfig(num_samples=6000, seed=42))
    name, cfg = ARCHS["cnn1d-quickstart"]
    new_model = lambda seed: build_model(name, cfg, data.input_shape, data.num_classes, seed)
    mem = MemorizationConfig(num_models=16, train=TrainConfig(epochs=40, batch_size=128, lr=3e-3, weight_decay=1e-4))
    runs = {}
    for label, vectorize, threads in (
        ("vmap, 2 threads", True, 2),
        ("sequential, 2 threads", False, 2),
        ("sequential, 1 thread", False, 1),
    ):
        torch.set_num_threads(threads)
        mem.vectorize = vectorize
        start = time.perf_counter()
        runs[label] = estimate_memorization(new_model, data.x_train, data.y_train, mem, data.augment)
        print(f"# {label}: {runs[label]['mode']}, {time.perf_counter() - start:.1f} s", flush=True)
    top = lambda scores: set(scores.topk(round(0.05 * len(scores))).indices.tolist())  # the quickstart's forget set
    print("| compared | correctness entries that agree | mean abs score difference | top-5% sets shared |")
    print("|---|---:|---:|---:|")
    ref = runs["sequential, 2 threads"]
    for label in ("vmap, 2 threads", "sequential, 1 thread"):
        a = runs[label]
        shared = len(top(a["scores"]) & top(ref["scores"])) / len(top(ref["scores"]))
        print(
            f"| {label} vs sequential, 2 threads | {(a['correct'] == ref['correct']).float().mean().item():.2%} "
            f"| {(a['scores'] - ref['scores']).abs().mean().item():.4f} | {shared:.1%} |"
        )


if __name__ == "__main__":
    main()
