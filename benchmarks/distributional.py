"""The distributional scores, vectorised against a straightforward per-example loop, side by side in one process.

Draws two populations of logit-scaled confidences (N models x n forget examples: an "unlearned" one and a "retrained"
one, shifted apart by a little so epsilon spreads over the buckets) and times the competition's forget quality both
ways: workloads/forget_quality.py (all examples and thresholds at once, on the device asked for) and
workloads/reference_scores.py (metric.py read step by step: one example at a time in NumPy, as the reference runs).
The same for KLoM (workloads/klom.py against the bench's per-example binned KL). Prints the median of each over
repeats, the ratio, and the largest difference between the two answers (they compute the same numbers).

The per-example loop takes minutes at the competition's size; `--loop-examples` times it on the first examples only
and scales its time to all of them (it is linear in the examples).

    python benchmarks/distributional.py                                # 1,000 examples x 512 models (BENCHMARKS.md)
    python benchmarks/distributional.py --device cuda                  # the vectorised score on a GPU
    python benchmarks/distributional.py --smoke                        # every code path at a tiny size
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from workloads.forget_quality import ForgetQualityConfig, forget_quality
from workloads.klom import KLoMConfig, binned_kl
from workloads.reference_scores import reference_binned_kl, reference_forget_quality


def populations(models: int, examples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, n) float64 confidences: the retrained population around each example's own level, the unlearned one the
    same shifted by up to one standard deviation (example by example), so epsilons span the buckets."""
    g = torch.Generator().manual_seed(seed)
    level = torch.randn(examples, generator=g, dtype=torch.float64) * 3
    shift = torch.rand(examples, generator=g, dtype=torch.float64)
    retrained = level + torch.randn(models, examples, generator=g, dtype=torch.float64)
    unlearned = level + shift + torch.randn(models, examples, generator=g, dtype=torch.float64)
    return unlearned, retrained


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def forget_quality_rows(unlearned, retrained, device, loop_examples: int, repeats: int) -> list[str]:
    cfg = ForgetQualityConfig()
    u, r = unlearned.to(device), retrained.to(device)
    forget_quality(u[:, :4], r[:, :4], cfg)  # warm-up (tables, kernels)
    fast, (quality, _) = timed(lambda: forget_quality(u, r, cfg), repeats)
    part = min(loop_examples, unlearned.shape[1])
    un, re = unlearned[:, :part].numpy(), retrained[:, :part].numpy()
    loop, reference = timed(lambda: reference_forget_quality(un, re, cfg), 1)
    loop_all = loop * unlearned.shape[1] / part
    check = forget_quality(u[:, :part], r[:, :part], cfg)[0]
    return [
        f"| forget quality F | {fast:.3f} | {loop_all:.1f}{'' if part == unlearned.shape[1] else ' (scaled)'} | "
        f"{loop_all / fast:.0f}x | {abs(check - reference):.2e} (F = {quality:.4f}) |"
    ]


def klom_rows(unlearned, retrained, device, loop_examples: int, repeats: int) -> list[str]:
    cfg = KLoMConfig()
    u, r = unlearned.to(device), retrained.to(device)
    binned_kl(u[:, :4], r[:, :4], cfg)
    fast, kl = timed(lambda: binned_kl(u, r, cfg), repeats)
    part = min(loop_examples, unlearned.shape[1])
    un, re = unlearned.numpy(), retrained.numpy()
    loop, reference = timed(lambda: [reference_binned_kl(un[:, i], re[:, i]) for i in range(part)], 1)
    loop_all = loop * unlearned.shape[1] / part
    gap = float(np.max(np.abs(kl[:part].cpu().numpy() - np.array(reference))))
    return [f"| KLoM (per-example KL) | {fast:.3f} | {loop_all:.2f} | {loop_all / fast:.0f}x | {gap:.2e} |"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=512, help="models per population (the competition's 512)")
    ap.add_argument("--examples", type=int, default=1000, help="forget examples")
    ap.add_argument("--loop-examples", type=int, default=100, help="examples the per-example loop runs (scaled up)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: every code path, no meaningful figure")
    args = ap.parse_args()
    if args.smoke:
        args.models, args.examples, args.loop_examples, args.repeats = 16, 20, 10, 1
    torch.set_num_threads(args.threads)
    unlearned, retrained = populations(args.models, args.examples)
    print(
        f"# Distributional scores: {args.examples} examples x {args.models} models per population, "
        f"vectorised on {args.device} vs the per-example loop (NumPy, CPU); "
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}\n"
    )
    print("| score | vectorised (s) | per-example loop (s) | ratio | largest difference |")
    print("|---|---|---|---|---|")
    for rows in (forget_quality_rows, klom_rows):
        print("\n".join(rows(unlearned, retrained, torch.device(args.device), args.loop_examples, args.repeats)))


if __name__ == "__main__":
    main()
