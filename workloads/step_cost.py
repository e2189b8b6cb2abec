"""What one training step and one forward example of a model cost on a device, measured in about a second, for the
plan's compute estimate (orchestrator/plan/cost.py caches it per machine). The step is the project's own (Adam,
cross-entropy, the model's speed settings) on random inputs of the data's shape.

Timed robustly against a machine other work shares: after a warm-up, BLOCKS blocks of calls, each about
BLOCK_SECONDS long, and the best block's mean is the cost (another process's burst only ever slows a block down);
the median block over the best is kept as the spread, how much the load moved it. A single timing of a few steps
on a busy 2-core machine came out 5-60x the steps' cost inside a run."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workloads.config import typed
from workloads.models import MODELS, build_model
from workloads.speed import SpeedConfig, prepare_images, prepare_model
from workloads.train import predict

WARMUP, BLOCKS, BLOCK_SECONDS, MAX_CALLS = 3, 7, 0.05, 50
BUDGET_SECONDS = 3.0  # per timing: a slow model stops after this, with at least 3 blocks


@dataclass(frozen=True)
class StepCost:
    train_step_seconds: float  # one optimiser step at the batch size
    forward_example_seconds: float  # one example passed forward in eval mode, in large batches
    spread: float = 1.0  # the median timed block of the train step over the best


def measure_step_cost(
    model_name: str,
    model_args: dict,
    speed: SpeedConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    device: torch.device,
) -> StepCost:
    entry = MODELS.get(model_name)
    model = prepare_model(
        build_model(model_name, typed(entry.config, model_args, "model.args"), input_shape, num_classes, 0).to(device),
        speed,
        device,
    )
    x = prepare_images(torch.randn(batch_size, *input_shape, device=device), speed)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train, median = _timed(step, device)
    many = x.repeat(4, *([1] * len(input_shape)))
    forward, _ = _timed(lambda: predict(model, many), device)
    return StepCost(train, forward / len(many), median / train)


def _timed(fn, device: torch.device) -> tuple[float, float]:
    """(best, median) seconds per call over the timed blocks, after the warm-up."""
    for _ in range(WARMUP):
        fn()
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)  # the node's GPU
    sync()
    start = time.perf_counter()
    fn()
    sync()
    calls = max(1, min(MAX_CALLS, int(BLOCK_SECONDS / max(time.perf_counter() - start, 1e-9))))
    blocks, began = [], time.perf_counter()
    while len(blocks) < BLOCKS and (len(blocks) < 3 or time.perf_counter() - began < BUDGET_SECONDS):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        blocks.append((time.perf_counter() - start) / calls)
    return min(blocks), statistics.median(blocks)
