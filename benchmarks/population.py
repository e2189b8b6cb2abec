"""Population members trained as one vmapped ensemble against one at a time, side by side in one process.

Plans the CPU distributional sweep (configs/sweeps/distributional_cpu.yaml, its data, model and recipe) with one block
of `--members` members, and runs the same block nodes both ways (`members.vectorize` on and off): a `population_train`
block (retrained members) and a `population_unlearn` block of each `--methods` setting from the sweep's original.
Prints the median wall time of each over interleaved repeats (after a warm-up), the ratio, and the largest difference
between the two paths' forget logits (the members are the same models up to float rounding).

    python benchmarks/population.py                                  # the table in BENCHMARKS.md (this CPU)
    python benchmarks/population.py --device cuda --members 64       # the same on a GPU
    python benchmarks/population.py --smoke                          # every code path at a tiny size
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from orchestrator.plan import build_dag
from orchestrator.spec import as_dict, load_spec
from workloads.forget import attack_pool_size, select_forget_set
from workloads.nodes import NODE_KINDS, InputNode, RunContext, dataset_for

SWEEP = Path(__file__).resolve().parent.parent / "configs" / "sweeps" / "distributional_cpu.yaml"


def planned(members: int, overrides: list[str]):
    """The sweep's DAG with one block of `members` members per population (no relearning attack)."""
    more = [f"population.members={members}", f"population.block={members}", "population.relearn_k=[]"]
    spec = load_spec(SWEEP, [*more, "population.outputs.keep_models=false", *overrides])
    data = dataset_for({"dataset": as_dict(spec.dataset)})
    return spec, build_dag(spec, attack_pool_size(data.y_train, spec.forget))


def run_both(node, inputs, ctx, repeats: int) -> tuple[float, float, float]:
    """(sequential s, vmapped s, largest forget-logit difference) of one block node, interleaved repeats."""
    kind = NODE_KINDS.get(node.kind)
    configs = {
        v: dataclasses.replace(node.config, members=dataclasses.replace(node.config.members, vectorize=v))
        for v in (True, False)
    }
    times, logits = {True: [], False: []}, {}
    for r in range(repeats):
        for vectorize in (True, False) if r % 2 == 0 else (False, True):
            start = time.perf_counter()
            out = kind.run(configs[vectorize], inputs, ctx)
            times[vectorize].append(time.perf_counter() - start)
            logits[vectorize] = out.tensors["logits_forget"]
            expected = "vmap" if vectorize else "sequential"
            assert out.result["mode"] == expected, f"{node.label}: {out.result['message']}"
    diff = (logits[True] - logits[False]).abs().max().item()
    return statistics.median(times[False]), statistics.median(times[True]), diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=16, help="members of the block (the sweep's block is 16)")
    ap.add_argument("--methods", default="finetune,neggrad_plus", help="unlearning settings of the sweep to time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: every code path, no meaningful figure")
    args = ap.parse_args()
    overrides = []
    if args.smoke:  # a few steps of three members of one method, on one thread: the paths run, the figures mean nothing
        args.members, args.repeats, args.methods, args.threads = 3, 1, "finetune", 1
        overrides = ["dataset.args.num_samples=400", "train.epochs=0.5", "methods.1.hparams.epochs=0.2"]
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec, dag = planned(args.members, overrides)
    data = dataset_for({"dataset": as_dict(spec.dataset)}, device)
    ctx = RunContext(device, data, select_forget_set(data.y_train.cpu(), spec.forget))
    print(
        f"# {args.members} members of the distributional CPU sweep's model ({spec.model.name} {spec.model.args}), "
        f"{len(data.y_train)} training examples; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} threads, {args.device}, torch {torch.__version__}; median of {args.repeats} interleaved "
        f"repeats after a warm-up; load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| block | sequential s | vmapped s | speed-up | max abs forget-logit diff |")
    print("|---|---:|---:|---:|---:|")
    original_node = next(n for n in dag if n.kind == "train_original")
    original = NODE_KINDS.get(original_node.kind).run(original_node.config, {}, ctx).state
    model_input = InputNode({}, lambda: original)
    blocks = [next(n for n in dag if n.kind == "population_train")]
    for method in args.methods.split(","):
        blocks += [next(n for n in dag if n.kind == "population_unlearn" and n.config.method == method)]
    for node in blocks:
        inputs = {"start": model_input, "original": model_input} if node.kind == "population_unlearn" else {}
        warm = dataclasses.replace(node.config, members=dataclasses.replace(node.config.members, seeds=[1, 2]))
        if not args.smoke:
            NODE_KINDS.get(node.kind).run(warm, inputs, ctx)  # warm-up: functorch's first vmap, kernels
        sequential, vmapped, diff = run_both(node, inputs, ctx, args.repeats)
        name = "retrained" if node.kind == "population_train" else node.config.method
        print(f"| {name} | {sequential:.2f} | {vmapped:.2f} | {sequential / vmapped:.2f}x | {diff:.1e} |", flush=True)
    print(f"\n# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
