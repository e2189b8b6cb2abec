"""How every process that runs torch starts: denormal numbers flushed to zero in every torch thread, and exactly
as many threads as the cores the process was given.

Why: as a model converges, weight decay drives dead weights and Adam's second moments into the float32 denormal
range, where an Intel CPU takes a microcode assist per operation; one forward pass of the quickstart's CNN went
from 1.1 ms to 22 ms over 3,000 steps (AMD CPUs pay far less). The flag (FTZ/DAZ in MXCSR) is per thread and a new
thread copies it from the thread that creates it, so it must be set before torch starts its intra-op pool; set
later it reaches only the main thread. `flushes_in_every_thread` checks the outcome rather than trusting the call.

Two torch processes of two threads each on two cores made one step 100x slower (4.4 ms -> 478 ms), so the count is
never torch's default (all cores of the machine) but the share a node holds: the local executor's `--threads`, a Ray
actor's `num_cpus`, a Tune trial's CPUs.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Optional

import torch

from workloads.speed import fp32_math

_DENORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38
_ELEMENTS = 1 << 22  # large enough that every intra-op thread gets a share of one elementwise op


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and `taskset` narrow), not the
    machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name, as benchmarks and step-cost caches name the machine."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def configure_torch(threads: Optional[int] = None) -> dict:
    """Flush denormals and set the intra-op thread count (default: the cores available). Call it first thing in a
    process, before any torch operation has started the thread pool. Returns `runtime_facts()`."""
    torch.set_flush_denormal(True)
    torch.set_num_threads(max(1, int(threads or available_cores())))
    return runtime_facts()


def flushes_in_every_thread() -> bool:
    """True when a denormal times one comes out as zero in every chunk of a parallel elementwise op, i.e. in every
    thread of the pool (a thread without the flag leaves its chunk denormal)."""
    product = torch.full((_ELEMENTS,), _DENORMAL, dtype=torch.float32) * 1.0
    return int(product.count_nonzero()) == 0


def runtime_facts(device: Optional[torch.device] = None) -> dict:
    """What a node's results record about how it ran: what its speed depends on, and on a GPU what makes its numbers
    reproducible or not (gpu_facts). Random numbers are always drawn by CPU generators (workloads/train.py
    `generator_for`), so a CPU and a GPU run of one node draw the same batches and augmentations."""
    facts = {
        "torch_threads": torch.get_num_threads(),
        "flush_denormal": flushes_in_every_thread(),
        "torch": torch.__version__,
    }
    if device is not None:
        facts |= gpu_facts(device) if device.type == "cuda" else {"device": "cpu"}
        facts["generator"] = "cpu"
    return facts


# -- GPUs -------------------------------------------------------------------------------------------------------------
# What a worker sets on a CUDA device, once per process (configure_device) and before every node (set_fp32_math in
# workloads/speed.py), and what every node records about it (runtime_facts). Why each choice: README, "Running on GPUs".
DETERMINISTIC_ENV = "UNLEARN_SWEEP_CUDNN_DETERMINISTIC"  # "0": let cuDNN choose non-deterministic kernels (faster)
CONTEXT_BYTES = 512 * 2**20  # what a process's CUDA context takes outside the caching allocator, about


class DeviceUnavailable(RuntimeError):
    """A worker was given a GPU it cannot use: computing on its CPU instead would be a silent, many-times-slower run."""


def nvidia_gpus_present() -> bool:
    """Whether this machine has NVIDIA GPUs (the driver's device files), whatever torch's CUDA can make of them."""
    return any(Path("/dev").glob("nvidia[0-9]*")) or any(Path("/proc/driver/nvidia/gpus").glob("*"))


def cuda_problem() -> str:
    """Why torch cannot use CUDA here, in its own words (a wheel built for a newer driver says so)."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    try:
        torch.cuda.init()
    except Exception as error:  # noqa: BLE001 - its message is the diagnosis
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
    return "no CUDA device is visible to this process (CUDA_VISIBLE_DEVICES)"


def device_here(preference: str) -> torch.device:
    """The device a process on this machine runs on for a sweep's `device` (auto: the first GPU, else the CPU);
    ValueError saying what this machine has when it lacks the device."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(preference)
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (chosen.index or 0) >= count:
            why = f"this machine has {count} usable CUDA device(s)" + ("" if count else f" ({cuda_problem()})")
            raise ValueError(f"device: {preference} is not there: {why}")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device: mps is not available on this machine")
    return chosen


def worker_device(preference: str, holds_gpu: bool) -> torch.device:
    """The device of a Ray worker (an actor, a Tune trial) that does or does not hold a share of a GPU. Ray makes the
    GPU it gave the worker its `cuda:0`, so the index of a sweep's `device: cuda:N` does not apply here. A worker that
    holds a GPU but cannot use CUDA fails (DeviceUnavailable) when the sweep asked for `cuda` or the machine has NVIDIA
    GPUs; only a GPU that is a logical resource on a machine without any (Ray's `num_gpus` on a CPU test cluster)
    means the CPU."""
    if not holds_gpu or preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    if preference.startswith("cuda") or nvidia_gpus_present():
        raise DeviceUnavailable(
            f"this worker holds a GPU but torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use it: "
            f"{cuda_problem()}"
        )
    return torch.device("cpu")


def gpu_memory_share(share: float, total_bytes: int) -> Optional[float]:
    """The fraction of the GPU's memory a worker holding `share` of it may allocate (None: a whole GPU, no cap): its
    share less the CUDA context every process keeps outside the allocator, so that the workers packed on one GPU fit
    in it together."""
    if share >= 1:
        return None
    return max(0.05 * share, share - CONTEXT_BYTES / total_bytes)


def configure_device(device: torch.device, share: float = 1.0) -> None:
    """Once per process that runs nodes on `device`: cuDNN's choice of kernels fixed (no autotuning by timing, and
    deterministic kernels unless UNLEARN_SWEEP_CUDNN_DETERMINISTIC=0), and a fractional worker's memory capped at its
    share, so one node running out of memory fails alone instead of the GPU's other workers."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = os.environ.get(DETERMINISTIC_ENV, "1") != "0"
    if share < 1:  # a whole GPU's worker asks nothing of the device here
        fraction = gpu_memory_share(share, torch.cuda.get_device_properties(device).total_memory)
        torch.cuda.set_per_process_memory_fraction(fraction, device)


def release_device_memory(device: torch.device) -> None:
    """After a node: the allocator's cached blocks go back to the GPU, for the workers that share it."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def gpu_facts(device: torch.device) -> dict:
    """What makes a GPU figure reproducible, or not: the device and its software, and the settings that choose its
    kernels and its fp32 arithmetic (TF32 on or off, per node: workloads/speed.py)."""
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = getattr(torch.cuda, "get_per_process_memory_fraction", lambda d: None)(device)
    return {
        "device": torch.cuda.get_device_name(device),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        **{f"fp32_{op}": mode for op, mode in fp32_math().items()},  # ieee, or tf32 on the tensor cores
        "memory_gib": round(total / 2**30, 1),
        **({"memory_fraction": round(fraction, 3)} if fraction is not None else {}),
    }
