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
from typing import Optional

import torch

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
    """What a node's results record about how it ran (speed depends on these, its numbers do not)."""
    facts = {
        "torch_threads": torch.get_num_threads(),
        "flush_denormal": flushes_in_every_thread(),
        "torch": torch.__version__,
    }
    if device is not None:
        facts["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return facts
