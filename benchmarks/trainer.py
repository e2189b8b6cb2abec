"""The project's training path against the reference study's training loop, same model, batch, optimiser and steps.

Reference loop (shoaibahmed/vision_relearning): a torchvision-style Dataset of uint8 HWC images turned into PIL
images and transformed one sample at a time (RandomHorizontalFlip, RandomCrop(32, padding=4, reflect), ToTensor;
the study does not normalise, `--normalize` adds Normalize to both paths), a DataLoader with `--workers` worker
processes (shuffle, persistent workers, pin_memory on CUDA), and a plain fp32 NCHW step: cross-entropy, zero_grad,
backward, Adam step, cosine schedule. For the quickstart's 1D CNN the Dataset holds per-sample tensors; MNIST-1D as
the quickstart configures it has no augmentation, so neither path augments it.
Project path (workloads/train.py): the whole set resident on the device as a float tensor, a `BatchStream`
shuffling on the device with the batched crop + flip of workloads/data/cifar.py (`crop_flip`), `fit` with
`adam_with_cosine`, and the `workloads.speed` settings: fp32, channels-last, bf16_everywhere + channels-last.

    python benchmarks/trainer.py                       # ResNet-18 widths 8-32, the quickstart CNN: minutes on 2 cores
    python benchmarks/trainer.py --archs resnet18 --widths 64 --steps 5 --repeats 3
    python benchmarks/trainer.py --device cuda --widths 64 --batch-size 512
    python benchmarks/trainer.py --smoke               # every code path at tiny sizes on 1 thread, well under a minute

Target: the project path at least 3x the reference loop on the CPU (channels-last, and bf16 where the CPU computes
bf16 natively) and at least 5x on a GPU.

Columns: "precision ran" is what `effective_precision` says ran (a bf16 row is skipped, with a note, where bf16 would
fall back to fp32); img/s is the median over interleaved repeats of images trained per second (warm-up excluded);
"x reference" is that over the reference loop's img/s for the same model and device; GFLOP/s counts one training
step's convolutions and matmuls, forward and backward (FlopCounterMode; element-wise ops and batch-norm are not
counted), at the row's img/s; "% of peak" is against the peak of the precision that ran: on a CPU estimated from its
clock and widest FMA (fp32) or its AMX / AVX512-BF16 units (bf16), on a GPU its data-sheet dense peak (unknown for
devices not in the table).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from workloads.data import MNIST1DConfig, load_dataset
from workloads.data.cifar import crop_flip
from workloads.models import CNN1DConfig, ResNetConfig, build_model
from workloads.runtime import available_cores, configure_torch
from workloads.speed import SpeedConfig, effective_precision, prepare_images, prepare_model
from workloads.train import BatchStream, TrainConfig, adam_with_cosine, fit, generator_for

RECIPE = TrainConfig()  # lr, weight decay and cosine floor of both paths (the speed of a step does not depend on them)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
PROJECT_PATHS = {  # row name -> speed settings of the project path
    "project fp32 NCHW": SpeedConfig(),
    "project channels-last": SpeedConfig(channels_last=True),
    "project bf16_everywhere + channels-last": SpeedConfig(precision="bf16_everywhere", channels_last=True),
}
# Dense (no sparsity) data-sheet peaks in TFLOP/s: (bf16 tensor, tf32 tensor, fp32), matched as words in this order
# so that "H100 PCIe" is not read as the SXM part and "A10" does not match "A100" or "A10G".
GPU_PEAKS = [
    ("H100 PCIe", (756, 378, 51)),
    ("H200", (989, 494, 67)),
    ("H100", (989, 494, 67)),
    ("A100", (312, 156, 19.5)),
    ("L4", (121, 60, 30.3)),
    ("A10", (125, 62.5, 31.2)),
    ("RTX 4090", (165, 82.6, 82.6)),
]


def worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # each loader process decodes one sample at a time; more threads only contend


class ImageSamples(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per sample: uint8 HWC array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class SignalSamples(torch.utils.data.Dataset):
    """Per-sample tensors, as the reference would hold MNIST-1D (the quickstart's data has no augmentation)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class CountingStream(BatchStream):
    """A BatchStream that counts the images it hands out (a pass's last batch may be short)."""

    images = 0

    def __next__(self):
        x, y = super().__next__()
        self.images += len(y)
        return x, y


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_runner(model, dataset, args, device: torch.device, total_steps: int):
    """The reference loop; returns run(n) -> images trained in n steps."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=False,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=worker_init,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=RECIPE.lr, weight_decay=RECIPE.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total_steps, eta_min=RECIPE.lr * RECIPE.final_lr_fraction
    )

    def batches():
        while True:  # epochs back to back, as the study's `while True: for batch in loader`
            yield from loader

    stream = batches()

    def run(n: int) -> int:
        images = 0
        for _ in range(n):
            model.train()
            xb, yb = next(stream)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            images += len(yb)
        return images

    return run, loader


def project_runner(
    model, x: torch.Tensor, y: torch.Tensor, augment, speed: SpeedConfig, args, device: torch.device, total_steps: int
):
    """workloads/train.py's path with one speed setting; returns run(n) -> images trained in n steps."""
    model = prepare_model(model, speed, device)
    stream = CountingStream(prepare_images(x, speed), y, args.batch_size, generator_for(0), augment)
    optimizer, schedule = adam_with_cosine(model, RECIPE.lr, RECIPE.weight_decay, total_steps, RECIPE.final_lr_fraction)

    def run(n: int) -> int:
        before = stream.images
        fit(model, stream, optimizer, schedule, n)
        return stream.images - before

    return run


def step_flops(model, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward+backward at this batch, on a copy so the measured model's state is untouched."""
    model = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def cpu_flags_and_clock() -> tuple[str, set, float]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    field = lambda key: next((m.group(1).strip() for m in re.finditer(rf"^{key}\s*:(.*)$", info, re.M)), "")
    return field("model name") or "unknown CPU", set(field("flags").split()), float(field("cpu MHz") or 0)


def peak_flops(device: torch.device, precision: str) -> tuple[float | None, str]:
    """(FLOP/s, how it was obtained) of the whole device for the precision that ran; None where unknown."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peaks = next((p for pattern, p in GPU_PEAKS if re.search(rf"\b{pattern}\b", name)), None)
        if peaks is None:
            return None, f"{name}: peak unknown"
        # fp32 convolutions run on TF32 tensor cores when cuDNN allows it (torch's default).
        index = 0 if precision == "bf16" else (1 if torch.backends.cudnn.allow_tf32 else 2)
        kind = ("bf16", "tf32", "fp32")[index]
        return peaks[index] * 1e12, f"{name} dense {kind} {peaks[index]} TFLOP/s (data sheet)"
    _, flags, mhz = cpu_flags_and_clock()
    per_cycle, kind = (
        64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8,
        "fp32",
    )  # per core, 2 FMA units
    if precision == "bf16" and flags & {"amx_bf16", "avx512_bf16"}:
        # AMX tiles: 512 bf16 multiply-adds a cycle per core; AVX512-BF16 dot products: 2 ports x 16 lanes x 2 pairs.
        per_cycle, kind = (1024, "bf16 (AMX)") if "amx_bf16" in flags else (128, "bf16 (AVX512-BF16)")
    cores = available_cores()
    if not mhz:
        return None, "CPU clock unknown"
    return cores * mhz * 1e6 * per_cycle, f"estimate: {cores} cores x {mhz:.0f} MHz x {per_cycle} {kind} FLOP/cycle"


def synthetic_cifar(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-shaped data: uint8 (n, 32, 32, 3) images and 10 classes (content does not change a step's cost)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def cifar_inputs(images: np.ndarray, labels: np.ndarray, normalize: bool):
    """(reference Dataset, project x, y, project augment) over the same images."""
    from torchvision import transforms

    steps = [
        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(32, padding=4, padding_mode="reflect"),
        transforms.ToTensor(),
    ]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)  # as workloads/data/cifar.py reads CIFAR
    if normalize:
        steps.append(transforms.Normalize(CIFAR_MEAN, CIFAR_STD))
        x = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return ImageSamples(images, labels, transforms.Compose(steps)), x, torch.from_numpy(labels), crop_flip(4, True)


def configurations(args):
    """(label, registry name, model config, reference Dataset, project x, y, augment) for each model asked for."""
    for arch in args.archs.split(","):
        if arch == "cnn1d":
            data = load_dataset("mnist1d", MNIST1DConfig(num_samples=args.mnist1d_samples), limit_train=args.examples)
            yield (
                "cnn1d quickstart",
                "cnn1d",
                CNN1DConfig(channels=[32, 64, 64], hidden=256),
                SignalSamples(data.x_train, data.y_train),
                data.x_train,
                data.y_train,
                data.augment,
            )
        elif arch in ("resnet18", "resnet34"):
            dataset, x, y, augment = cifar_inputs(*synthetic_cifar(args.examples), args.normalize)
            for width in map(int, args.widths.split(",")):
                yield f"{arch} width {width}", arch, ResNetConfig(width=width), dataset, x, y, augment
        else:
            raise SystemExit(f"--archs: unknown {arch!r}; choose from resnet18, resnet34, cnn1d")


def measure(config, device: torch.device, args, notes: list) -> list[tuple]:
    """Rows (label, path, precision ran, img/s, GFLOP per image) for one model on one device."""
    label, name, cfg, dataset, x, y, augment = config
    x, y = x.to(device), y.to(device)
    new_model = lambda: build_model(name, cfg, tuple(x.shape[1:]), 10, seed=0).to(device)
    total = args.warmup + args.steps * args.repeats
    runners, precisions = {}, {}
    runners["reference loop fp32 NCHW"], loader = reference_runner(new_model(), dataset, args, device, total)
    precisions["reference loop fp32 NCHW"] = "fp32"
    for path, speed in PROJECT_PATHS.items():
        if speed.channels_last and x.dim() != 4:  # channels-last is a no-op on 1-D signals
            if speed.precision == "fp32":
                continue  # the fp32 NCHW row already is this path
            path, speed = path.replace(" + channels-last", ""), SpeedConfig(precision=speed.precision)
        ran = effective_precision(speed, device)
        if speed.precision != "fp32" and ran == "fp32":
            notes.append(f"{label}, {device.type}: '{path}' skipped: bf16 would run as fp32 here (no native bf16)")
            continue
        runners[path], precisions[path] = project_runner(new_model(), x, y, augment, speed, args, device, total), ran
    for run in runners.values():
        run(args.warmup)  # kernels, allocator, and the loader's worker processes
    seconds = {path: [] for path in runners}
    order = list(runners)
    for r in range(args.repeats):
        for path in order if r % 2 == 0 else order[::-1]:  # A B C, C B A, ...: drift hits every path alike
            sync(device)
            start = time.perf_counter()
            images = runners[path](args.steps)
            sync(device)
            seconds[path].append(images / (time.perf_counter() - start))
    del runners, loader  # stops the persistent workers before the next configuration
    flops = step_flops(new_model(), x[: args.batch_size], y[: args.batch_size]) / min(args.batch_size, len(y))
    return [(label, path, precisions[path], statistics.median(rates), flops) for path, rates in seconds.items()]


def header(args, devices: list[torch.device], facts: dict) -> str:
    model, _, _ = cpu_flags_and_clock()
    gpus = [torch.cuda.get_device_name(d) for d in devices if d.type == "cuda"]
    return (
        f"# {model}, {available_cores()} cores, torch {torch.__version__}, devices: "
        f"{', '.join(d.type for d in devices)}{' (' + ', '.join(gpus) + ')' if gpus else ''}, "
        f"{facts['torch_threads']} torch threads, flush denormal: {facts['flush_denormal']}, "
        f"load average {os.getloadavg()[0]:.2f}, {datetime.datetime.now().isoformat(timespec='seconds')}\n"
        f"# batch {args.batch_size}, {args.steps} timed steps x {args.repeats} interleaved repeats (median) after "
        f"{args.warmup} warm-up steps, {args.examples} examples, reference DataLoader workers: {args.workers}\n"
        f"# note: the {args.workers} loader workers (1 torch thread each) compete with the training threads for the "
        f"same {available_cores()} cores"
        + (
            f"\n# WARNING: load average {os.getloadavg()[0]:.1f}: another process holds cores, and torch threads that "
            f"share them with it run 10-100x slower; measure on a quiet machine"
            if os.getloadavg()[0] > 0.5
            else ""
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--archs", default="resnet18,cnn1d", help="comma list of resnet18, resnet34, cnn1d (the quickstart's)"
    )
    ap.add_argument(
        "--widths", default="8,16,32", help="ResNet widths (channels of the first stage; the study's is 64)"
    )
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per repeat")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the cores available)")
    ap.add_argument("--workers", type=int, default=2, help="the reference loop's DataLoader worker processes")
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto: the CPU and, if there is one, the GPU")
    ap.add_argument(
        "--examples", type=int, default=5000, help="synthetic CIFAR images (and at most this many MNIST-1D)"
    )
    ap.add_argument(
        "--normalize", action="store_true", help="add Normalize(mean, std) to both paths (the study has none)"
    )
    ap.add_argument(
        "--smoke", action="store_true", help="every path at tiny sizes: 2 steps, width 8, 256 examples, 1 thread"
    )
    args = ap.parse_args()
    args.mnist1d_samples = 6000  # the quickstart's MNIST-1D
    if args.smoke:
        # Width 8, not 4: torch 2.14's oneDNN segfaults in the backward of a channels-last 1x1 stride-2 convolution
        # from 4 channels on one thread. One thread unless asked: the smoke checks code paths, and two threads on
        # two cores that a test suite also uses collapse (spinning OpenMP barriers) to 100x slower steps.
        args.steps, args.warmup, args.repeats, args.widths, args.examples, args.mnist1d_samples = 2, 1, 1, "8", 256, 400
        args.threads = args.threads or 1
    facts = configure_torch(args.threads)  # flush denormals and set threads before torch starts its thread pool
    devices = (
        [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        if args.device == "auto"
        else [torch.device(args.device)]
    )
    print(header(args, devices, facts), flush=True)
    rows, notes = [], []
    for config in configurations(args):
        for device in devices:
            rows += [(device, *row) for row in measure(config, device, args, notes)]
    print("| model | path | precision ran | img/s | × reference | GFLOP/s | % of peak |")
    print("|---|---|---|---:|---:|---:|---:|")
    reference = {(d, label): rate for d, label, path, _, rate, _ in rows if path.startswith("reference")}
    for device, label, path, precision, rate, flops in rows:
        peak, _ = peak_flops(device, precision)
        share = f"{flops * rate / peak:.1%}" if peak else "unknown"
        where = f" ({device.type})" if len(devices) > 1 else ""
        print(
            f"| {label}{where} | {path} | {precision} | {rate:,.0f} | {rate / reference[(device, label)]:.2f}x "
            f"| {flops * rate / 1e9:.1f} | {share} |"
        )
    for device in devices:
        fp32, bf16 = peak_flops(device, "fp32")[1], peak_flops(device, "bf16")[1]
        print(f"# peak {device.type}: {fp32}" + (f"; bf16: {bf16}" if bf16 != fp32 else ""))
    for note in notes:
        print(f"# {note}")
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
