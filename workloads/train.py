"""The training loop every node shares: tensors already on the device, shuffling and augmentation on the device,
Adam (or SGD with momentum, `train.optimizer`) with cosine decay. One step of the quickstart's 1D CNN at batch 128
takes about 2 ms on two CPU cores. A model with example-tied dropout trains with each example's own mask: `fit` hands
the layers the training-set indices of every batch (workloads/models/tied_dropout.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from workloads.checkpoint import TrainingCheckpoint
from workloads.config import added_later
from workloads.metrics import accuracy, mean_loss, per_class_accuracy
from workloads.models.tied_dropout import tied_layers, tied_to

OPTIMIZERS = ("adam", "sgd")


@dataclass
class TrainConfig:
    """Recipe of `train_original` / `train_retrain`; `epochs` count passes over the set being trained on."""

    epochs: float = 30.0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    final_lr_fraction: float = 0.1  # cosine decay from lr to lr * final_lr_fraction
    augment: bool = True
    # Added for the REM study's recipe (SGD); at Adam they stay out of content keys, so stored models keep theirs.
    optimizer: str = added_later("adam")  # adam | sgd (with `momentum`, Nesterov off)
    momentum: float = added_later(0.9)


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def steps_for(epochs: float, num_examples: int, batch_size: int) -> int:
    return max(1, round(epochs * math.ceil(num_examples / batch_size)))


class BatchStream:
    """Endless shuffled mini-batches of device-resident tensors: a new permutation each pass, augmentation per batch."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None,
    ):
        if len(y) == 0:
            raise ValueError("cannot draw batches from an empty set")
        self.x, self.y, self.batch_size, self.generator, self.augment = x, y, batch_size, generator, augment
        self.batches_per_pass = math.ceil(len(y) / batch_size)
        self._order: torch.Tensor = torch.empty(0, dtype=torch.long)
        self._cursor = 0
        self.last_index: torch.Tensor = self._order  # positions in x of the batch drawn last

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def state_dict(self) -> dict:
        """Where the stream is: its generator's state and the current pass's permutation and position."""
        return {"generator": self.generator.get_state(), "order": self._order.cpu(), "cursor": self._cursor}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._order, self._cursor = state["order"].to(self.y.device), int(state["cursor"])

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cursor >= len(self._order):
            self._order = torch.randperm(len(self.y), generator=self.generator, device=self.generator.device).to(
                self.y.device
            )
            self._cursor = 0
        index = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        self.last_index = index
        x = self.x[index]
        return (self.augment(x, self.generator) if self.augment else x), self.y[index]


def generator_for(seed: int, device: torch.device) -> torch.Generator:
    # CUDA generators drive on-device randperm/randint without a host round trip.
    return torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(seed)


def make_optimizer(params, name: str, lr: float, weight_decay: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def with_cosine(optimizer: torch.optim.Optimizer, total_steps: int, final_lr_fraction: float):
    cosine = lambda step: (
        final_lr_fraction
        + (1 - final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)


def adam_with_cosine(model: nn.Module, lr: float, weight_decay: float, total_steps: int, final_lr_fraction: float):
    return with_cosine(
        torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay), total_steps, final_lr_fraction
    )


def fit(
    model: nn.Module,
    stream: BatchStream,
    optimizer,
    schedule,
    total_steps: int,
    after_step: Optional[Callable[[int], None]] = None,
    ids: Optional[torch.Tensor] = None,
    checkpoint: Optional[TrainingCheckpoint] = None,
) -> list[tuple[int, float]]:
    """Cross-entropy steps; returns the loss curve as (step, mean loss over the last pass of the stream). `ids`:
    the training-set index of each row of the stream, for the masks of a model with example-tied dropout. With a
    `checkpoint`, resumes from it if one was saved for these steps, and saves one whenever it is due."""
    curve, running = [], torch.zeros((), device=stream.y.device)
    tied = ids is not None and bool(tied_layers(model))
    first = 1
    if checkpoint is not None and (saved := checkpoint.load()) is not None and saved["total_steps"] == total_steps:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        stream.load_state_dict(saved["stream"])
        curve, running, first = (
            [tuple(point) for point in saved["curve"]],
            saved["running"].to(running.device),
            saved["step"] + 1,
        )
    for step in range(first, total_steps + 1):
        model.train()
        xb, yb = next(stream)
        with tied_to(model, ids[stream.last_index]) if tied else nullcontext():
            loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running += loss.detach()
        if step % stream.batches_per_pass == 0 or step == total_steps:
            done = (step - 1) % stream.batches_per_pass + 1
            curve.append((step, running.item() / done))  # one host sync per pass, not per step
            running.zero_()
        if after_step is not None:
            after_step(step)
        if checkpoint is not None and step < total_steps and checkpoint.due(step):
            checkpoint.save(
                {
                    "step": step,
                    "total_steps": total_steps,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "stream": stream.state_dict(),
                    "curve": curve,
                    "running": running.cpu(),
                }
            )
    return curve


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    seed: int,
    augment=None,
    epoch_size: Optional[int] = None,
    ids: Optional[torch.Tensor] = None,
    checkpoint: Optional[TrainingCheckpoint] = None,
) -> list[tuple[int, float]]:
    """The original/retrain recipe: Adam (or SGD), cosine decay to lr * final_lr_fraction, on-device augmentation. An
    epoch is one pass over `epoch_size` examples (default: the set trained on), so a model trained on a subset can
    take the steps, and the cosine length, of the full set's schedule. `ids`: the rows' training-set indices.
    `checkpoint`: resume from / save to it (fit)."""
    total = steps_for(cfg.epochs, len(y) if epoch_size is None else epoch_size, cfg.batch_size)
    stream = BatchStream(x, y, cfg.batch_size, generator_for(seed, x.device), augment if cfg.augment else None)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    optimizer, schedule = with_cosine(optimizer, total, cfg.final_lr_fraction)
    return fit(model, stream, optimizer, schedule, total, ids=ids, checkpoint=checkpoint)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Logits for every row of x, in eval mode."""
    was_training = model.training
    model.eval()
    logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else None
    model.train(was_training)
    return logits


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict:
    """Loss, accuracy and per-class accuracy (NaN for classes absent from y)."""
    logits = predict(model, x) if len(y) else None
    return {
        "loss": mean_loss(logits, y, num_classes),
        "acc": accuracy(logits, y, num_classes),
        "per_class_acc": per_class_accuracy(logits, y, num_classes),
    }
