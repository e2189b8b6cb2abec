"""What one training step and one forward example of a model cost on a device, measured in about a second, for the
plan's compute estimate (orchestrator/plan/cost.py caches it per machine). The step is the project's own (Adam,
cross-entropy, the model's speed settings) on random inputs of the data's shape; timed after two warm-up steps."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workloads.config import typed
from workloads.models import MODELS, build_model
from workloads.speed import SpeedConfig, prepare_images, prepare_model
from workloads.train import predict

WARMUP, TIMED = 2, 5


@dataclass(frozen=True)
class StepCost:
    train_step_seconds: float  # one optimiser step at the batch size
    forward_example_seconds: float  # one example passed forward in eval mode, in large batches


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

    train = _timed(step, device)
    many = x.repeat(4, *([1] * len(input_shape)))
    forward = _timed(lambda: predict(model, many), device) / len(many)
    return StepCost(train, forward)


def _timed(fn, device: torch.device) -> float:
    for _ in range(WARMUP):
        fn()
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)  # the node's GPU
    sync()
    start = time.perf_counter()
    for _ in range(TIMED):
        fn()
    sync()
    return (time.perf_counter() - start) / TIMED
