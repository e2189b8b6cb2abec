"""The training loop every node shares: tensors already on the device, shuffling and augmentation on the device,
Adam (or SGD with momentum, `train.optimizer`) with cosine decay, or the REM reference's warmup and linear decay
(`train.schedule`). One step of the quickstart's 1D CNN at batch 128 takes about 2 ms on two CPU cores. A model with
example-tied dropout trains with each example's own mask: `fit` hands the layers the training-set indices of every
batch (workloads/models/tied_dropout.py). Under fp16 autocast (workloads/speed.py) `fit` scales the loss.

The REM reference's recipe (if-loops/rem, src/methods.py `Naive.__init__`, `Naive.train_one_epoch`, `Naive.unlearn`;
src/utils.py `LinearLR`) as options of TrainConfig: `schedule: warmup_linear`, `iterations` (steps instead of epochs),
`overshoot` (its loop's one extra step) and `select: best_test` (its checkpoint of best test accuracy: off by
default, since it selects on the test set). `retrain` holds the retrained baseline's departures from the recipe."""

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
SCHEDULES = ("cosine", "warmup_linear")
SELECTIONS = ("last", "best_test")
INITS = ("original", "fresh")
TIED_MODES = ("masks", "drop")


@dataclass
class RetrainConfig:
    """How the retrained baseline departs from the original's recipe (`train.retrain`). The REM reference retrains
    (its `EU` method: src/main.py builds `ApplyK`, which re-initialises through src/utils.py `unlearn_func`) from a
    fresh init, at its unlearning lr, in drop mode, for the original's number of steps."""

    lr: Optional[float] = None  # None: the original's lr
    # original: the original's initial weights; fresh: drawn anew (from the seed + 1,000,003) with conv and linear
    # biases zero, as the reference's `initialize_weights` leaves them.
    init: str = "original"
    # How a model with example-tied dropout trains: masks (each example its own, as the original) or drop (no masks,
    # every memorisation channel off: the reference trains its retrained baseline so).
    tied_dropout: str = "masks"


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
    # Added for the REM reference's recipe; at these values they stay out of content keys.
    schedule: str = added_later("cosine")  # cosine (to lr * final_lr_fraction) | warmup_linear (lr_factor)
    warmup_fraction: float = added_later(0.01)  # warmup_linear: floor(steps * this) warmup steps (the reference: 1%)
    linear_horizon: float = added_later(1.25)  # warmup_linear: the lr would reach 0 after this many x steps
    iterations: Optional[int] = added_later(None)  # the steps (the reference's train_iters) instead of `epochs`
    overshoot: bool = added_later(False)  # one step past the steps unless a pass ends there, as the reference's loop
    select: str = added_later("last")  # last | best_test: the weights of best test accuracy (BestOnTest)
    select_every: int = added_later(5)  # best_test: test accuracy after every this-many-th pass
    retrain: Optional[RetrainConfig] = added_later(None)  # the retrained baseline's departures; None: the same recipe


def check_recipe(cfg: TrainConfig, where: str = "train") -> None:
    """ValueError naming the key of a value the recipe cannot run with."""
    for key, value, allowed in (("schedule", cfg.schedule, SCHEDULES), ("select", cfg.select, SELECTIONS)):
        if value not in allowed:
            raise ValueError(f"{where}.{key}: must be one of {', '.join(allowed)}, got {value!r}")
    if cfg.iterations is not None and cfg.iterations < 1:
        raise ValueError(f"{where}.iterations: must be at least 1, got {cfg.iterations}")
    if not 0 <= cfg.warmup_fraction < 1 or cfg.linear_horizon <= 0 or cfg.select_every < 1:
        raise ValueError(f"{where}: warmup_fraction must be in [0, 1), linear_horizon > 0 and select_every >= 1")
    if cfg.retrain is not None:
        for key, value, allowed in (
            ("init", cfg.retrain.init, INITS),
            ("tied_dropout", cfg.retrain.tied_dropout, TIED_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"{where}.retrain.{key}: must be one of {', '.join(allowed)}, got {value!r}")
        if cfg.retrain.lr is not None and cfg.retrain.lr <= 0:
            raise ValueError(f"{where}.retrain.lr: must be above 0, got {cfg.retrain.lr}")


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def steps_for(epochs: float, num_examples: int, batch_size: int) -> int:
    return max(1, round(epochs * math.ceil(num_examples / batch_size)))


def recipe_steps(cfg: TrainConfig, epoch_size: int, trained_on: int) -> tuple[int, int]:
    """(the steps the schedule is laid out over, the steps taken). The first is `iterations`, or `epochs` passes over
    `epoch_size` examples; the second adds the reference's extra step with `overshoot`: its loop (src/methods.py,
    `Naive.train_one_epoch`) counts a step and breaks once the count exceeds train_iters, which only a pass over the
    `trained_on` examples ending exactly there prevents."""
    nominal = cfg.iterations if cfg.iterations is not None else steps_for(cfg.epochs, epoch_size, cfg.batch_size)
    per_pass = math.ceil(trained_on / cfg.batch_size)
    return nominal, nominal + int(cfg.overshoot and nominal % per_pass != 0)


def lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The schedule as LambdaLR's factor of the lr for the step after `e` scheduler steps (e = 0: the first).
    warmup_linear is the reference's LinearLR(t = horizon * steps, warmup = steps // 100) from its first get_lr on:
    (e + 1) / (W + 1) while e < W, then 1 - (e - W) / t (at 4,000 steps: 1/41 first, 1 at step 41, 0.208 at the
    last). Floored at 0, which the reference never reaches (its t is longer than the run)."""
    if cfg.schedule == "warmup_linear":
        warmup, horizon = math.floor(total_steps * cfg.warmup_fraction + 1e-9), cfg.linear_horizon * total_steps
        return lambda e: (e + 1) / (warmup + 1) if e < warmup else max(0.0, 1 - (e - warmup) / horizon)
    final = cfg.final_lr_fraction
    return lambda e: final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(e, total_steps) / total_steps))


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
            order = torch.randperm(len(self.y), generator=self.generator, device=self.generator.device)
            self._order = order.to(self.y.device, non_blocking=True)  # no wait for the GPU's queue
            self._cursor = 0
        index = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        self.last_index = index
        x = self.x[index]
        return (self.augment(x, self.generator) if self.augment else x), self.y[index]


def generator_for(seed: int) -> torch.Generator:
    """The generator of a node's batches and augmentations: always the CPU's, on every device. A CUDA generator would
    draw other numbers from the same seed, so a GPU run of a node would be another sample than a CPU run under the
    same content key, and a training checkpoint could not resume on the other kind of device. The draws are a few
    hundred integers per step, copied to the GPU without waiting for it (`non_blocking`)."""
    return torch.Generator().manual_seed(seed)


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


class BestOnTest:
    """`select: best_test`, the reference's checkpoint (src/methods.py: `Naive.unlearn` scores the test set after
    every pass whose 0-based index is a positive multiple of 5, the last, partial, pass included; `Naive.eval` keeps a
    copy whenever accuracy beats every earlier one, and `compute_and_save_results` stores and scores that copy). It
    chooses on the test set, so the test accuracy it reports is optimistic; off by default. No evaluation beating 0
    keeps the last weights."""

    def __init__(self, x_test: torch.Tensor, y_test: torch.Tensor, every: int, per_pass: int, total_steps: int):
        self.x, self.y, self.every, self.per_pass, self.total = x_test, y_test, every, per_pass, total_steps
        self.best_acc, self.best_step = 0.0, 0
        self.best: Optional[dict] = None

    def observe(self, step: int, model: nn.Module) -> None:
        if step % self.per_pass and step != self.total:
            return
        index = math.ceil(step / self.per_pass) - 1  # of the pass that just ended
        if index == 0 or index % self.every:
            return
        acc = accuracy(predict(model, self.x), self.y, 0)
        if acc > self.best_acc:
            self.best_acc, self.best_step = acc, step
            self.best = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: nn.Module) -> None:
        if self.best is not None:
            model.load_state_dict(self.best)

    def state_dict(self) -> dict:
        return {"best_acc": self.best_acc, "best_step": self.best_step, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best_acc, self.best_step, self.best = state["best_acc"], state["best_step"], state["best"]


def adam_with_cosine(model: nn.Module, lr: float, weight_decay: float, total_steps: int, final_lr_fraction: float):
    return with_cosine(
        torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay), total_steps, final_lr_fraction
    )


@dataclass
class Training:
    """What a training loop's state is made of, saved to and resumed from a training checkpoint together."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object
    stream: BatchStream
    scaler: torch.amp.GradScaler
    selector: Optional[BestOnTest] = None

    def save(self, step: int, total_steps: int, curve: list, running: torch.Tensor) -> dict:
        return {
            "step": step,
            "total_steps": total_steps,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "stream": self.stream.state_dict(),
            "curve": curve,
            "running": running.cpu(),
            **({"scaler": self.scaler.state_dict()} if self.scaler.is_enabled() else {}),
            **({"selector": self.selector.state_dict()} if self.selector is not None else {}),
        }

    def cannot_resume(self, saved: dict, total_steps: int) -> Optional[str]:
        """Why a saved state cannot continue this training (None: it can). Checked before anything is loaded, so a
        refused state leaves the model, optimizer and stream untouched and training starts over."""
        if saved["total_steps"] != total_steps:
            return f"it was saved for {saved['total_steps']} steps, not {total_steps}"
        theirs, mine = saved["stream"]["generator"], self.stream.generator.get_state()
        if theirs.shape != mine.shape:  # a CUDA generator's 16 bytes against a CPU one's 5,056, or the reverse
            return f"its batch generator's state ({theirs.numel()} bytes) is not this generator's ({mine.numel()})"
        return None

    def resume(self, saved: dict, device: torch.device) -> tuple[list, torch.Tensor, int]:
        """Loads a saved state; returns (curve, running loss, the first step still to take)."""
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        self.stream.load_state_dict(saved["stream"])
        if "scaler" in saved:
            self.scaler.load_state_dict(saved["scaler"])
        if self.selector is not None:
            self.selector.load_state_dict(saved["selector"])
        return [tuple(point) for point in saved["curve"]], saved["running"].to(device), saved["step"] + 1


def fit(
    model: nn.Module,
    stream: BatchStream,
    optimizer,
    schedule,
    total_steps: int,
    after_step: Optional[Callable[[int], None]] = None,
    ids: Optional[torch.Tensor] = None,
    checkpoint: Optional[TrainingCheckpoint] = None,
    selector: Optional[BestOnTest] = None,
) -> list[tuple[int, float]]:
    """Cross-entropy steps; returns the loss curve as (step, mean loss over the last pass of the stream). `ids`:
    the training-set index of each row of the stream, for the masks of a model with example-tied dropout. With a
    `checkpoint`, resumes from it if one was saved for these steps, and saves one whenever it is due. A `selector`
    sees the model after every step and puts the weights it chose back at the end."""
    curve, running, first = [], torch.zeros((), device=stream.y.device), 1
    tied = ids is not None and bool(tied_layers(model))
    # fp16 autocast needs its loss scaled, as the reference's GradScaler does; any other precision runs unscaled.
    scaler = torch.amp.GradScaler(stream.y.device.type, enabled=getattr(model, "autocast_dtype", None) == torch.float16)
    training = Training(model, optimizer, schedule, stream, scaler, selector)
    if checkpoint is not None and (saved := checkpoint.load()) is not None:
        if (why := training.cannot_resume(saved, total_steps)) is None:
            curve, running, first = training.resume(saved, running.device)
        else:
            checkpoint.discard(why)
    for step in range(first, total_steps + 1):
        model.train()
        xb, yb = next(stream)
        with tied_to(model, ids[stream.last_index]) if tied else nullcontext():
            loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        running += loss.detach()
        if step % stream.batches_per_pass == 0 or step == total_steps:
            done = (step - 1) % stream.batches_per_pass + 1
            curve.append((step, running.item() / done))  # one host sync per pass, not per step
            running.zero_()
        if after_step is not None:
            after_step(step)
        if selector is not None:
            selector.observe(step, model)
        if checkpoint is not None and step < total_steps and checkpoint.due(step):
            checkpoint.save(training.save(step, total_steps, curve, running))
    if selector is not None:
        selector.restore(model)
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
    test: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    selector_out: Optional[list] = None,
) -> list[tuple[int, float]]:
    """The original/retrain recipe: Adam (or SGD), the schedule (cosine decay to lr * final_lr_fraction, or the
    reference's warmup and linear decay), on-device augmentation. An epoch is one pass over `epoch_size` examples
    (default: the set trained on), so a model trained on a subset can take the steps, and the schedule's length, of
    the full set's recipe. `ids`: the rows' training-set indices. `checkpoint`: resume from / save to it (fit).
    `test`: the test set `select: best_test` scores; the BestOnTest used is appended to `selector_out`."""
    check_recipe(cfg)
    nominal, total = recipe_steps(cfg, len(y) if epoch_size is None else epoch_size, len(y))
    stream = BatchStream(x, y, cfg.batch_size, generator_for(seed), augment if cfg.augment else None)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, nominal))
    selector = None
    if cfg.select == "best_test":
        if test is None:
            raise ValueError("train.select: best_test scores the test set, which this training was not given")
        selector = BestOnTest(*test, cfg.select_every, stream.batches_per_pass, total)
        if selector_out is not None:
            selector_out.append(selector)
    return fit(model, stream, optimizer, schedule, total, ids=ids, checkpoint=checkpoint, selector=selector)


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
