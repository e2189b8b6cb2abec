"""What every unlearning method shares: a config with its optimiser settings, a registry, and the loop.

A method is a small class: optional one-off `edit_weights`, a `retain_loss` and/or a `forget_loss` (pure functions
of the model and a batch), and a `schedule`: `joint` sums both losses every step; `alternating` makes one full pass
over the forget set minimising the forget loss, then one over the retain set minimising the retain loss, and so on;
`full` draws batches of the full training set (retain and forget rows shuffled together, as the REM study's reference
feeds Bad Teacher and SalUn) and minimises `full_loss(model, x, y, discovered, ctx)`, `discovered` flagging the
forget rows.
Epochs follow the reference convention: one epoch is the number of steps of one pass over the full training set.

Two hooks serve the methods whose step is not a sum of per-batch losses; their defaults leave the loop as above:
- `joint_loss(model, retain_batch, forget_batch, ctx)`: the loss of one `joint` step given both batches (forget_batch
  is None without a forget set); by default retain_loss + forget_loss. For losses that need both batches at once.
- `after_backward(model, ctx)`: runs after the step's loss is backpropagated and before the optimiser step, and may
  add to the parameters' `.grad` (gradients that are not the gradient of a loss of the model's own weights). It may
  draw extra forget batches from `ctx.forget_batches`.
- `before_step(model, ctx)`: runs before each step's batches are drawn (the REM study's reference loop sets the
  step's learning rate and keeps its checkpoint there: reference_loop.py).
- `after_step(model, ctx)`: runs after the optimiser step (SalUn puts back the weights outside its saliency mask).
A method whose unlearning is not one loop of such steps (REM's rounds, Potion's search) overrides `run(model, ctx,
optimizer, total)` instead, within the same budget of `total` steps. `optimizer` (adam | sgd) and `momentum` are
config values of the methods that declare them (`OptimizerConfig`); the others take Adam, as the reference study.
Randomness inside a step draws from `ctx.generator`, the loop's generator seeded from `ctx.seed` (it also orders the
batches), so the same config gives the same run.

A variant (`alternating_scrub` is `scrub` on the alternating schedule) is the same class registered again with other
class attributes, and its defaults file starts from the base method's (`base: scrub.yaml`).

`vmappable` says that a method's losses are pure functions of `model(x)`, its batch and the frozen models of the
context, so several runs of it (a population's members, workloads/population.py) may step together as one vmapped
ensemble; it is set where that was checked (fine-tuning and the weight edits, gradient ascent, SCRUB), and a method
without it runs its members one after another.

Class attributes the orchestrator reads: `requires_start_model` (the method must start from another method's
unlearned model, an initial safeguard), `is_oracle` (the method is the retrained control, built by every sweep) and
`version`, bumped when what one method computes changes (it enters the keys of that method's nodes only).
What a method reads is declared the same way: `uses_forget_set` (False: no forget stream, e.g. `finetune`) and
`uses_retain_set` (False: the method unlearns from the model and the forget set alone, as instance-wise unlearning
does, `l2ul.py`; the unlearn node then hands it an empty retain set and the loop draws no retain batch).

The loop reshuffles (and re-augments) each stream every pass; the reference's `itertools.cycle` replays its first
pass's batches unchanged (docs/fidelity.md). Both draw every example once per pass. The teacher (the frozen
original) runs in train mode like the student, as in the reference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import torch
from omegaconf import MISSING
from torch import nn

from workloads.config import ConfigError, added_later
from workloads.registry import Registry
from workloads.train import BatchStream, generator_for, make_optimizer, steps_for


@dataclass
class MethodConfig:
    """Optimiser settings every method has; defaults live in configs/methods/<name>.yaml."""

    lr: float = MISSING
    weight_decay: float = MISSING
    epochs: float = MISSING
    batch_size: int = MISSING
    # Draw retain and forget batches through the dataset's training augmentation (the reference's retain and forget
    # sets are subsets of its augmented training set); off reproduces the results from before the option existed.
    augment: bool = added_later(False)


@dataclass
class OptimizerConfig(MethodConfig):
    """For methods that follow the REM study's recipe (SGD with momentum) or Adam, as their defaults file says."""

    optimizer: str = MISSING  # adam | sgd
    momentum: float = MISSING  # SGD only


def check_choice(cfg: Any, field: str, choices: tuple[str, ...]) -> None:
    """For a config's `__post_init__`: a string option outside `choices` fails when the sweep is checked, naming it."""
    value = getattr(cfg, field)
    if value not in choices:
        raise ConfigError(f"{field}: must be one of {', '.join(choices)}, got {value!r}")


@dataclass
class UnlearnContext:
    original: nn.Module  # frozen copy of the original model, theta_0
    retain_x: torch.Tensor
    retain_y: torch.Tensor
    forget_x: torch.Tensor
    forget_y: torch.Tensor
    num_classes: int
    train_size: int  # size of the full training set, for the epoch convention
    seed: int
    step: int = 0
    total_steps: int = 1
    generator: Optional[torch.Generator] = None  # set by unlearn(), seeded from `seed`
    forget_batches: Optional[Iterator[tuple[torch.Tensor, torch.Tensor]]] = None  # the loop's forget stream
    # A frozen copy of the model the method starts from (the original, or a chained method's initial safeguard);
    # set by unlearn() before any weight edit.
    start: Optional[nn.Module] = None
    # The batch augmentation (x, generator) -> x applied to both streams, or None: the dataset's, if cfg.augment.
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None
    # Training-set indices of the retain rows, for the masks of models with example-tied dropout (None: unknown).
    retain_ids: Optional[torch.Tensor] = None
    # What a method reports beside its curve (REM's rounds, Potion's search), into the unlearn node's result.
    report: dict = field(default_factory=dict)


class UnlearningMethod:
    Config: ClassVar[type] = MethodConfig
    schedule: ClassVar[str] = "joint"
    uses_forget_set: ClassVar[bool] = True
    uses_retain_set: ClassVar[bool] = True
    requires_start_model: ClassVar[bool] = False
    is_oracle: ClassVar[bool] = False
    version: ClassVar[int] = 1
    # Its losses are pure functions of `model(x)`, the batch and the context's frozen models (no parameter access, no
    # random draws, no hooks): runs of it from one start may step together as a vmapped population.
    vmappable: ClassVar[bool] = False

    def __init__(self, cfg: MethodConfig):
        self.cfg = cfg

    @classmethod
    def batches_per_step(cls, cfg: MethodConfig) -> int:
        """Forward-backward passes of one batch per loop step, for the plan's compute estimate: a retain and a forget
        batch on the joint schedule, one on the alternating schedule or without a forget or a retain stream."""
        return 2 if cls.uses_forget_set and cls.uses_retain_set and cls.schedule == "joint" else 1

    def edit_weights(self, model: nn.Module, ctx: UnlearnContext) -> None:
        """A one-off change to the weights before optimisation starts; none by default."""

    def retain_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: UnlearnContext
    ) -> Optional[torch.Tensor]:
        return None

    def forget_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: UnlearnContext
    ) -> Optional[torch.Tensor]:
        return None

    def joint_loss(
        self,
        model: nn.Module,
        retain_batch: Optional[tuple[torch.Tensor, torch.Tensor]],
        forget_batch: Optional[tuple[torch.Tensor, torch.Tensor]],
        ctx: UnlearnContext,
    ) -> torch.Tensor:
        terms = [] if retain_batch is None else [self.retain_loss(model, *retain_batch, ctx)]
        if forget_batch is not None:
            terms.append(self.forget_loss(model, *forget_batch, ctx))
        return sum(t for t in terms if t is not None)

    def full_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, discovered: torch.Tensor, ctx: UnlearnContext
    ) -> torch.Tensor:
        """The loss of one `full` step: a batch of the full training set, `discovered` True on its forget rows."""
        raise NotImplementedError(f"{type(self).__name__} has no loss on full-set batches")

    def after_backward(self, model: nn.Module, ctx: UnlearnContext) -> None:
        """Adds extra gradients to the parameters' `.grad` before the optimiser step; none by default."""

    def before_step(self, model: nn.Module, ctx: UnlearnContext) -> None:
        """Runs at the start of each step, `ctx.step` set; nothing by default."""

    def after_step(self, model: nn.Module, ctx: UnlearnContext) -> None:
        """Runs after each optimiser step; nothing by default."""

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        return make_optimizer(
            model.parameters(),
            getattr(cfg, "optimizer", "adam"),
            cfg.lr,
            cfg.weight_decay,
            getattr(cfg, "momentum", 0.9),
        )

    run: Optional[Callable] = None  # (model, ctx, optimizer, total) -> curve: a method that owns its loop


METHODS: Registry[type[UnlearningMethod]] = Registry("unlearning method")


def register_method(name: str, **variant: Any):
    """Registers the class under `name`; with class attributes in `variant` (e.g. schedule="alternating"), registers a
    variant of it under that name instead and returns the class unchanged, so decorators stack:

        @register_method("alternating_scrub", schedule="alternating")
        @register_method("scrub")
        class Scrub(UnlearningMethod): ...
    """

    def add(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
        entry = type(f"{cls.__name__}[{name}]", (cls,), dict(variant)) if variant else cls
        entry.name = name
        METHODS.register(name)(entry)
        return cls

    return add


def frozen_copy(model: nn.Module) -> nn.Module:
    original = copy.deepcopy(model)
    original.requires_grad_(False)
    return original


def full_set_stream(ctx: UnlearnContext, batch_size: int, generator: torch.Generator) -> BatchStream:
    """Batches of the retain rows and the forget rows together; `last_index >= len(ctx.retain_y)` marks forget rows."""
    x, y = torch.cat([ctx.retain_x, ctx.forget_x]), torch.cat([ctx.retain_y, ctx.forget_y])
    return BatchStream(x, y, batch_size, generator, ctx.augment)


def prepare(
    method: UnlearningMethod, model: nn.Module, ctx: UnlearnContext, max_steps: Optional[int] = None
) -> tuple[int, torch.optim.Optimizer, Batches]:
    """What `unlearn` does before its first step: the step budget, the generator, the frozen start, the weight edit,
    the optimiser and the batch streams, in that order (a population trains several members from the same start,
    each prepared so, then steps them together: workloads/nodes/population_unlearn.py)."""
    cfg = method.cfg
    total = steps_for(cfg.epochs, ctx.train_size, cfg.batch_size) if max_steps is None else max_steps
    ctx.total_steps = total
    ctx.generator = generator_for(ctx.seed)
    ctx.start = frozen_copy(model)
    method.edit_weights(model, ctx)  # before the streams: a weight edit may draw from the generator first
    optimizer = method.make_optimizer(model)
    batches = Batches(method, ctx)
    model.train()
    # The teacher runs in train mode too, as in the reference: with batch-norm, eval-mode statistics would make its
    # outputs differ from the (identical) student's at step 0.
    ctx.original.train()
    ctx.start.train()
    return total, optimizer, batches


def unlearn(
    method: UnlearningMethod, model: nn.Module, ctx: UnlearnContext, max_steps: Optional[int] = None
) -> list[tuple[int, float]]:
    """Runs `method` on `model` in place; returns (step, loss) every pass of the retain set."""
    total, optimizer, batches = prepare(method, model, ctx, max_steps)
    if method.run is not None:
        return method.run(model, ctx, optimizer, total)
    curve, running, since_log = [], torch.zeros((), device=ctx.retain_x.device), 0
    for step in range(total):
        ctx.step = step
        method.before_step(model, ctx)
        loss = batches.loss(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.after_backward(model, ctx)
        optimizer.step()
        method.after_step(model, ctx)
        running += loss.detach()
        since_log += 1
        if since_log == batches.log_every or step == total - 1:
            curve.append((step + 1, running.item() / since_log))  # one host sync per pass
            running.zero_()
            since_log = 0
    return curve


class Batches:
    """The batches of a method's schedule and the loss it makes of each step's: `joint` (a retain and a forget batch),
    `alternating` (a pass over the forget set, then one over the retain set, starting with the forget pass as the
    reference does) or `full` (batches of the full training set, discovered rows marked). The streams are made in
    this order from the context's generator, so the same seed draws the same batches. A method that declares it uses
    no retain set gets no retain stream (and its joint steps no retain batch)."""

    def __init__(self, method: UnlearningMethod, ctx: UnlearnContext):
        self.method, self.ctx, size, generator = method, ctx, method.cfg.batch_size, ctx.generator
        retain = (
            BatchStream(ctx.retain_x, ctx.retain_y, size, generator, ctx.augment) if method.uses_retain_set else None
        )
        self.retain = retain
        forget = (
            BatchStream(ctx.forget_x, ctx.forget_y, size, generator, ctx.augment) if method.uses_forget_set else None
        )
        self.forget = ctx.forget_batches = forget
        self.full = full_set_stream(ctx, size, generator) if method.schedule == "full" else None
        self.log_every = next(s for s in (self.full, self.retain, self.forget) if s is not None).batches_per_pass
        self.alternating = method.schedule == "alternating"
        self.phase, self.left_in_phase = "forget", forget.batches_per_pass if self.alternating else 0

    def loss(self, model: nn.Module) -> torch.Tensor:
        return self.loss_of(model, self.draw())

    def draw(self) -> tuple:
        """This step's batches: ("forget" | "retain", (x, y)), ("full", (x, y, discovered)) or ("joint", (retain
        batch, forget batch or None)). Drawing advances the streams; `loss_of` only reads what was drawn, so
        several members' draws can be scored together (a vmapped population)."""
        if self.alternating:
            if self.left_in_phase == 0:
                self.phase = "retain" if self.phase == "forget" else "forget"
                self.left_in_phase = (self.retain if self.phase == "retain" else self.forget).batches_per_pass
            self.left_in_phase -= 1
            return self.phase, next(self.forget if self.phase == "forget" else self.retain)
        if self.full is not None:
            x, y = next(self.full)
            return "full", (x, y, self.full.last_index >= len(self.ctx.retain_y))
        # The retain batch is drawn before the forget batch, as both streams share one generator.
        retain_batch = next(self.retain) if self.retain is not None else None
        return "joint", (retain_batch, next(self.forget) if self.forget is not None else None)

    def loss_of(self, model: nn.Module, drawn: tuple) -> torch.Tensor:
        method, ctx = self.method, self.ctx
        kind, batch = drawn
        if kind == "forget":
            return method.forget_loss(model, *batch, ctx)
        if kind == "retain":
            return method.retain_loss(model, *batch, ctx)
        if kind == "full":
            return method.full_loss(model, *batch, ctx)
        return method.joint_loss(model, *batch, ctx)
