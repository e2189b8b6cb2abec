"""GPU figures for BENCHMARKS.md in one command, the first check of a new GPU machine: five sections, each a
Markdown table and its elapsed time, each a few minutes at most.

    python benchmarks/gpu.py                          # all five: about 10 minutes on an H100/H200
    python benchmarks/gpu.py --sections 1,4 --batch-size 512
    python benchmarks/gpu.py --smoke                  # every code path, tiny sizes, any device (CPU: a few minutes)

Every section runs with the settings a worker runs with (workloads/runtime.py `configure_device`: cuDNN's kernels
chosen without timing them and deterministic, fp32 as IEEE unless a row asks for TF32), so its figures are the
study's, not a tuned best case.

1. ResNet-18 (the study's width 64) trained by the project's own step (`workloads.train.fit`, a `BatchStream` of
   synthetic CIFAR-shaped images resident on the GPU, the crop + flip of workloads/data/cifar.py, Adam with cosine
   decay): first the study's own `speed:` settings (fp32 + channels-last), then TF32 + channels-last, the `bf16`
   profile (+ channels-last) and that compiled, which the study does not use: images/s and FLOP/s (one step counted
   by FlopCounterMode: convolutions and matmuls, forward and backward) as a share of the GPU's dense bf16 peak.
   Median of 3 runs after a warm-up, which holds the compilation and is shown. About 2 minutes.
2. `workloads.memorization.train_subset_models`, vmapped against sequential (same models and steps): the
   quickstart's 1D CNN, ResNet-18 at width 16 (its batch-norm running statistics send the vmap path back to
   sequential, as the table says) and the same ResNet without running statistics. About 40 s.
3. A local Ray with one GPU: four actors of num_gpus=0.25 (each capped at its share of the GPU's memory, as the
   sweep's actors are) train the same ResNet-18 job with the study's settings at once, against one actor running
   the four one after another: the throughput ratio and each actor's peak CUDA memory. About 2 minutes, much of it
   Ray and its workers starting.
4. The study sweep (configs/sweeps/cifar10_resnet18_study.yaml): each node's training and forward images from its
   config (`node_work`, roughly), at the throughput of the study's own settings in (1) (never a faster row the study
   does not run) and the concurrency gain of (3): GPU-hours and wall-hours on 1 and 8 GPUs. A few seconds.
5. The project's training path against the reference study's training loop on this GPU (benchmarks/trainer.py at
   the study's width; target: at least 5x). About 3 minutes.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from workloads.data.cifar import crop_flip  # noqa: E402
from workloads.memorization import MemorizationConfig, subset_masks, train_subset_models  # noqa: E402
from workloads.models import CNN1DConfig, ResNetConfig, build_model  # noqa: E402
from workloads.runtime import configure_device, cpu_model, device_here  # noqa: E402
from workloads.speed import SpeedConfig, effective_precision, prepare_images, prepare_model, set_fp32_math  # noqa: E402
from workloads.train import BatchStream, TrainConfig, adam_with_cosine, fit, generator_for  # noqa: E402

torch.set_flush_denormal(True)  # on the CPU (smoke runs), denormal floats would slow arithmetic many times over

STUDY = REPO / "configs" / "sweeps" / "cifar10_resnet18_study.yaml"
CIFAR = (3, 32, 32)
STUDY_ROW = "the study's: fp32 + channels-last"  # its `speed:` section, read from the file (study_speed)
SETTINGS = {  # row -> speed settings (None: the study's own)
    STUDY_ROW: None,
    "tf32 + channels-last": SpeedConfig(precision="tf32", channels_last=True),
    "bf16 profile + channels-last": SpeedConfig(precision="bf16", channels_last=True),
    "bf16 + channels-last + compile (no study)": SpeedConfig(precision="bf16", channels_last=True, compile=True),
}
# Dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets, no sparsity), matched as words in the device name in
# this order, so that "H100 PCIe" is not read as the SXM part and "A10" does not match "A100" or "A10G".
PEAKS = [
    (r"H100 PCIe", 756),
    (r"H200", 989),
    (r"H100", 989),
    (r"A100", 312),
    (r"L4", 121),
    (r"A10", 125),
    (r"RTX 4090", 165),
]
REPEATS, WARMUP = 3, 5


def timed(fn, device: torch.device) -> float:
    """Wall seconds of fn() with the GPU's queue drained before and after (kernels launch asynchronously)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def bf16_peak(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return next((tflops * 1e12 for pattern, tflops in PEAKS if re.search(rf"\b{pattern}\b", name)), None)


def study_speed() -> SpeedConfig:
    """The speed settings the study sweep runs with (its `speed:` section)."""
    from orchestrator.spec import load_spec

    return load_spec(STUDY).speed


def resnet_trainer(speed: SpeedConfig, width: int, batch: int, n: int, device: torch.device):
    """run(steps): the project's training step of a ResNet-18 on resident synthetic CIFAR (as train_classifier), in
    the fp32 arithmetic a worker sets for this precision (TF32 only when asked for)."""
    if device.type == "cuda":
        set_fp32_math(effective_precision(speed, device))
    # Synthetic images, laid out as the nodes lay out their resident training set (nodes/common.py).
    x, y = prepare_images(torch.rand(n, *CIFAR, device=device), speed), torch.randint(0, 10, (n,), device=device)
    model = prepare_model(build_model("resnet18", ResNetConfig(width=width), CIFAR, 10, 0).to(device), speed, device)
    stream = BatchStream(x, y, batch, generator_for(0), crop_flip())
    # The study's lr; a far horizon keeps the schedule's value irrelevant to speed.
    optimizer, schedule = adam_with_cosine(model, 1e-4, 1e-4, 10**9, 0.1)
    return lambda steps: fit(model, stream, optimizer, schedule, steps)


def step_flops(width: int, batch: int, device: torch.device) -> int:
    """FLOPs of one forward + backward at this batch (the optimiser's element-wise work is not counted)."""
    model = build_model("resnet18", ResNetConfig(width=width), CIFAR, 10, 0).to(device)
    x, y = torch.rand(batch, *CIFAR, device=device), torch.randint(0, 10, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def training_throughput(args, device: torch.device, found: dict) -> None:
    # Whole batches only: a short last batch would make torch.compile compile a second graph mid-measurement.
    n = args.batch_size * math.ceil(args.train_size / args.batch_size)
    flops, peak = step_flops(args.width, args.batch_size, device), bf16_peak(device)
    print(
        f"ResNet-18 width {args.width}, batch {args.batch_size}, {n:,} resident images, {flops / 1e9:.1f} GFLOP "
        f"per step, dense bf16 peak {f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}; median of {REPEATS} "
        f"runs of {args.steps} steps after {WARMUP} warm-up steps\n"
    )
    print("| setting | images/s | ms/step | achieved TFLOP/s | share of bf16 peak | warm-up s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, speed in SETTINGS.items():
        speed = speed or study_speed()
        if speed.compile and args.smoke and device.type != "cuda":
            print(f"| {name} | skipped: compiling takes minutes on a CPU | | | | |")
            continue
        train = resnet_trainer(speed, args.width, args.batch_size, n, device)
        warmup = timed(lambda train=train: train(WARMUP), device)  # cudnn's autotuning, torch.compile's compilation
        step = statistics.median(timed(lambda train=train: train(args.steps), device) for _ in range(REPEATS))
        step /= args.steps
        share = f"{flops / step / peak:.1%}" if peak else "unknown"
        print(
            f"| {name} | {args.batch_size / step:,.0f} | {step * 1e3:.2f} | {flops / step / 1e12:.1f} | {share} "
            f"| {warmup:.1f} |",
            flush=True,
        )
        if name == STUDY_ROW:  # the projection's speed: what the study runs, not the fastest row
            found.update(images_per_s=args.batch_size / step, setting=name)
        del train
        if device.type == "cuda":
            torch.cuda.empty_cache()


def strip_running_stats(model: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm on batch statistics only, in training and evaluation: the buffers vmap cannot update go away."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._NormBase):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return model


def ensemble_seconds(name: str, cfg, shape: tuple, n: int, augment, change, models: int, args, device) -> tuple:
    """Seconds of train_subset_models sequentially and vmapped (same seeds, subsets, steps), and the vmap run's note."""
    x, y = torch.rand(n, *shape, device=device), torch.randint(0, 10, (n,), device=device)
    included = subset_masks(models, n, 0.7, 0)
    passes = math.ceil(included.sum().item() / models / args.batch_size)  # batches in a mean-sized subset

    def new_model(seed: int) -> torch.nn.Module:
        model = build_model(name, cfg, shape, 10, seed)
        return change(model) if change else model

    def run(vectorize: bool, steps: int):
        train = TrainConfig(epochs=steps / passes, batch_size=args.batch_size, lr=1e-3, augment=augment is not None)
        mem = MemorizationConfig(num_models=models, vectorize=vectorize, train=train)
        return train_subset_models(new_model, x, y, included, mem, augment)

    for vectorize in (True, False):
        timed(lambda vectorize=vectorize: run(vectorize, 2), device)  # functorch's first vmap, cudnn's autotuning
    sequential = timed(lambda: run(False, args.steps), device)
    ensemble = []
    vmapped = timed(lambda: ensemble.append(run(True, args.steps)), device)
    return sequential, vmapped, ensemble[0].message


def ensembles(args, device: torch.device, found: dict) -> None:
    width, models = (8, 2) if args.smoke else (16, args.models)
    resnet = ("resnet18", ResNetConfig(width=width), CIFAR, 256 if args.smoke else 50_000, crop_flip())
    cases = {  # label: (registered model, config, input shape, examples, augmentation, change to each model)
        "cnn1d quickstart (`[32, 64, 64]`, 256)": (
            "cnn1d",
            CNN1DConfig(),
            (1, 40),
            256 if args.smoke else 4800,
            None,
            None,
        ),
        f"resnet18 width {width}": (*resnet, None),
        f"resnet18 width {width}, no BN running stats": (*resnet, strip_running_stats),
    }
    print(
        f"{models} models each, 70% subsets, {args.steps} steps at batch {args.batch_size}, one run each way after "
        f"a 2-step warm-up of each\n"
    )
    print("| model | models | sequential s | vmap s | speed-up | path the vmap run took |")
    print("|---|---:|---:|---:|---:|---|")
    for label, case in cases.items():
        sequential, vmapped, message = ensemble_seconds(*case, models, args, device)
        print(
            f"| {label} | {models} | {sequential:.2f} | {vmapped:.2f} | {sequential / vmapped:.2f}x | {message} |",
            flush=True,
        )


class JobActor:
    """One Ray worker training ResNet-18 jobs; Ray points CUDA_VISIBLE_DEVICES at its GPU (none: the CPU)."""

    def __init__(self, threads: int, share: float):
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
        self.device = device_here("auto")
        configure_device(self.device, share)  # as a sweep's actor: its share of the GPU's memory, cuDNN fixed

    def jobs(self, count: int, width: int, batch: int, n: int, steps: int) -> tuple[float, int]:
        """`count` jobs one after another (each building its data, model and optimiser): seconds, peak CUDA bytes."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        seconds = timed(
            lambda: [resnet_trainer(study_speed(), width, batch, n, self.device)(steps) for _ in range(count)],
            self.device,
        )
        return seconds, torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else 0


def ray_actors(args, device: torch.device, found: dict) -> None:
    import ray

    cpus, steps = os.cpu_count() or 4, 3 * args.steps  # longer jobs: Ray's dispatch is a smaller share of them
    # A logical GPU where there is none (smoke runs on a CPU), so the same fractional-GPU scheduling runs. The actors
    # ask for no CPU, so the GPU share alone places them; each runs torch on a quarter of the cores.
    # Workers inherit the environment of a local Ray (no runtime_env: it would keep Ray's prestarted workers unused).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    ray.init(num_gpus=1, num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        actors = [ray.remote(num_gpus=0.25, num_cpus=0)(JobActor).remote(max(1, cpus // 4), 0.25) for _ in range(4)]
        n = args.batch_size * math.ceil(args.train_size / args.batch_size)
        job = {"width": args.width, "batch": args.batch_size, "n": n}
        ray.get([a.jobs.remote(1, steps=WARMUP, **job) for a in actors])  # workers up, CUDA contexts, cudnn autotuning
        start = time.perf_counter()
        together = ray.get([a.jobs.remote(1, steps=steps, **job) for a in actors])
        side_by_side = time.perf_counter() - start
        start = time.perf_counter()
        _, alone_memory = ray.get(actors[0].jobs.remote(4, steps=steps, **job))
        one_at_a_time = time.perf_counter() - start
    finally:
        ray.shutdown()
    images = 4 * steps * args.batch_size
    found["concurrency"] = one_at_a_time / side_by_side
    gib = lambda *peaks: ", ".join(f"{m / 2**30:.2f}" for m in peaks) if device.type == "cuda" else "n/a (no GPU)"
    print(
        f"4 jobs of {steps} steps, ResNet-18 width {args.width}, batch {args.batch_size}, the study's settings; "
        f"each job builds its own resident data, model and optimiser\n"
    )
    print("| way | wall s | images/s | throughput ratio | peak CUDA memory per actor, GiB |")
    print("|---|---:|---:|---:|---|")
    print(
        f"| one actor, 4 jobs one at a time | {one_at_a_time:.2f} | {images / one_at_a_time:,.0f} | 1.00x "
        f"| {gib(alone_memory)} |"
    )
    print(
        f"| 4 actors of 0.25 GPU side by side | {side_by_side:.2f} | {images / side_by_side:,.0f} "
        f"| {found['concurrency']:.2f}x | {gib(*(m for _, m in together))} |"
    )


def node_work(node, n_train: int, n_test: int) -> tuple[int, int]:
    """(images through a training step, images only passed forward) of one node: its kind's declared `work`, the
    plan's own estimate (workloads/nodes: loading, recording, SCRUB's teacher and SSD's Fisher passes left out)."""
    from workloads.nodes import NODE_KINDS, DataSize

    work = NODE_KINDS.get(node.kind).work(node.config, DataSize(n_train, n_test))
    return work.train_steps * work.batch_size, work.forward_examples


def study_work(args, device: torch.device) -> tuple:
    """The study's DAG and each node's (training images, forward images) on CIFAR-10's 50,000 + 10,000 images."""
    from orchestrator.plan.dag import build_dag
    from orchestrator.spec import load_spec
    from workloads.forget import attack_pool_size

    spec = load_spec(STUDY)
    pool = attack_pool_size(torch.arange(50_000) % 10, spec.forget)  # CIFAR-10's labels: 5,000 images per class
    dag = build_dag(spec, pool)
    return dag, {node: node_work(node, 50_000, 10_000) for node in dag}


def study_projection(args, device: torch.device, found: dict) -> None:
    dag, work = study_work(args, device)
    if "images_per_s" not in found:  # section 1 not run: the study's own setting, measured briefly
        run = resnet_trainer(study_speed(), args.width, args.batch_size, args.batch_size * 8, device)
        timed(lambda: run(WARMUP), device)
        found.update(
            images_per_s=args.batch_size * args.steps / timed(lambda: run(args.steps), device),
            setting=f"{STUDY_ROW}, measured here",
        )
    speed, gain = found["images_per_s"], found.get("concurrency", 1.0)
    # A forward pass costs about a third of a training step (the backward pass is about twice the forward).
    seconds = {node: (train + forward / 3) / speed for node, (train, forward) in work.items()}
    finish = {}  # the longest chain of dependencies, each node alone on a GPU at full speed
    for node in dag.nodes:  # topological order
        finish[node] = seconds[node] + max((finish[i] for i in node.inputs.values()), default=0.0)
    critical, gpu_hours = max(finish.values()) / 3600, sum(seconds.values()) / gain / 3600
    print(
        f"{STUDY.name}: {len(dag.nodes)} nodes at {speed:,.0f} images/s ({found['setting']}, batch {args.batch_size}; "
        f"the nodes train at their own batch size), {gain:.2f}x from concurrent actors per GPU "
        f"({'section 3' if 'concurrency' in found else 'section 3 not run'}). Rough: see `node_work` for what is "
        f"approximated; the plan's cost estimate may replace this.\n"
    )
    print("| node kind | nodes | training images, millions | forward images, millions | GPU-hours |")
    print("|---|---:|---:|---:|---:|")
    # TAR's adversaries are most of the study's compute: their nodes get a row of their own.
    group = lambda n: n.kind + (" (tar)" if n.method == "tar" else "")
    for kind in dict.fromkeys(map(group, dag.nodes)):
        nodes = [n for n in dag.nodes if group(n) == kind]
        print(
            f"| {kind} | {len(nodes)} | {sum(work[n][0] for n in nodes) / 1e6:,.1f} "
            f"| {sum(work[n][1] for n in nodes) / 1e6:,.1f} | {sum(seconds[n] for n in nodes) / gain / 3600:,.2f} |"
        )
    print(
        f"\nNot derived, so left out: SCRUB's teacher and SSD's Fisher passes, loading and recording; memorization "
        f"reads C-scores here. Wall-hours are at least the critical path, {critical:,.1f} h.\n"
    )
    print("| GPUs | GPU-hours | wall-hours |")
    print("|---:|---:|---:|")
    for gpus in (1, 8):
        print(f"| {gpus} | {gpu_hours:,.1f} | {max(gpu_hours / gpus, critical):,.1f} |")


def trainer_against_reference(args, device: torch.device, found: dict) -> None:
    """benchmarks/trainer.py on this GPU at the study's width (its own table; its --smoke on a CPU)."""
    import subprocess

    script = [sys.executable, str(REPO / "benchmarks" / "trainer.py"), "--archs", "resnet18"]
    if args.smoke:
        script += ["--smoke", "--device", device.type]
    else:
        script += ["--device", "cuda", "--widths", str(args.width), "--batch-size", str(args.batch_size)]
        script += ["--steps", "20", "--repeats", "3"]
    done = subprocess.run(script, capture_output=True, text=True)
    print(done.stdout if done.returncode == 0 else f"benchmarks/trainer.py failed:\n{done.stdout}{done.stderr}")


SECTIONS = {
    1: ("ResNet-18 CIFAR training throughput", training_throughput),
    2: ("Memorization ensemble: vmapped against sequential", ensembles),
    3: ("Four quarter-GPU Ray actors side by side against one at a time", ray_actors),
    4: ("Projected wall time of the study sweep", study_projection),
    5: ("The trainer against the reference loop", trainer_against_reference),
}


def header(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    return (
        f"# {gpu}, CUDA {torch.version.cuda}, torch {torch.__version__}, {cpu_model()} ({os.cpu_count()} CPUs), "
        f"{datetime.date.today().isoformat()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="1,2,3,4,5", help="comma-separated, of 1-5")
    ap.add_argument("--width", type=int, default=64, help="ResNet-18 width of sections 1, 3 and 4 (the study's: 64)")
    ap.add_argument("--batch-size", type=int, default=128, help="128 (the study's) or 512")
    ap.add_argument("--steps", type=int, default=100, help="timed steps per run (section 3: 3x that per job)")
    ap.add_argument("--models", type=int, default=16, help="models per ensemble in section 2")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device is here: the code paths only")
    args = ap.parse_args()
    device = device_here("auto")
    if device.type != "cuda" and not args.smoke:
        sys.exit("benchmarks/gpu.py measures a CUDA GPU and none is visible; --smoke runs its code paths on the CPU")
    args.train_size = 50_000  # CIFAR's training set, resident
    if args.smoke:
        # Width 8 as in the tests (at width 4 a channels-last backward segfaults torch 2.14 on the project's CPU); one
        # thread, as torch's threads waiting on each other on a shared CPU made a step 75x slower there.
        args.width, args.batch_size, args.steps, args.train_size = 8, 8, 2, 64
        torch.set_num_threads(1)
    configure_device(device)  # the workers' settings (no cudnn.benchmark: the workers never time kernels)
    print(header(device))
    if args.smoke:
        print(
            "# "
            + (
                "no GPU: smoke run, figures mean nothing"
                if device.type != "cuda"
                else "smoke run, figures mean nothing"
            )
        )
    found: dict = {}  # what later sections use: section 1's study-settings throughput, section 3's concurrency gain
    total = time.perf_counter()
    numbers = sorted({int(s) for s in args.sections.split(",")})
    if not set(numbers) <= set(SECTIONS):
        ap.error(f"--sections: expected numbers among 1-5, got {args.sections}")
    for number in numbers:
        title, section = SECTIONS[number]
        print(f"\n## {number}. {title}\n", flush=True)
        start = time.perf_counter()
        section(args, device, found)
        print(f"\n_section {number}: {time.perf_counter() - start:.1f} s_", flush=True)
    print(f"\n_total: {time.perf_counter() - total:.1f} s_")


if __name__ == "__main__":
    main()
