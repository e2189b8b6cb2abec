"""Corruptions of the training set, REM's task space (Schoepf et al. 2025): a registry of small entries, each with a
typed config, that pick which training examples are corrupted and how.

- `poison_trigger` (high regularity): a patch at a fixed place (the last `patch` samples of a 1-D signal, the
  bottom-right `patch` x `patch` pixels of an image) set to the data's maximum value, label set to `target_class`;
  drawn at random among the examples of the other classes. Its test-time split is the test set with the patch, the
  target class's own images left out: the share of them still sent to the target class is what the trigger does.
- `interclass_swap` (medium): the first `size / 2` examples of `class_a` labelled `class_b` and the first `size / 2`
  of `class_b` labelled `class_a` (the reference: 500 cats and 500 dogs of CIFAR-10);
- `random_swap` (low): `size` examples drawn at random, each relabelled (y + U{1..C-1}) mod C.

A corruption is a function of the training labels, the input shape and its node config (`name`, `size`, `seed`,
`args`), so the planner knows it before any data is read. Its examples come out in *discovery order*, one seeded
permutation: the subset discovered at rate r is its first round(r * size) examples, so the 0.2 subset holds the 0.1
subset and every discovery rate is a prefix of the same draw. That subset is the forget set (`discovered_forget_set`);
the original trains on the corrupted set with nothing removed (`undiscovered_view`). Both views carry the corruption,
so it enters the data identity, and the content key, of every node that reads the training set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import torch

from workloads.config import typed
from workloads.data.base import Dataset
from workloads.forget import ForgetSet, wrong_labels
from workloads.registry import Registry

REGULARITY = ("high", "medium", "low")  # heatmap rows, top to bottom


@dataclass
class CorruptionConfig:
    """The `corruption` section of a node config: one registered corruption, drawn with one seed."""

    name: str = "???"
    size: int = 1000  # corrupted training examples (the reference: 1,000 of CIFAR-10's 50,000)
    seed: int = 0  # which examples (where drawn at random) and the discovery order
    args: dict[str, Any] = field(default_factory=dict)


class CorruptionKind:
    """A registered corruption: which examples and which labels (`choose`), and what happens to their inputs
    (`patch`, none by default) and to a test split that shows the corruption's effect (`test_split`, none)."""

    Config: ClassVar[type] = object
    regularity: ClassVar[str] = "low"

    def __init__(self, args: Any):
        self.args = args

    def choose(
        self, labels: torch.Tensor, num_classes: int, size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices of the corrupted examples, their corrupted labels)."""
        raise NotImplementedError

    def patch(self, x: torch.Tensor, value: float) -> torch.Tensor:
        return x

    def test_split(
        self, x_test: torch.Tensor, y_test: torch.Tensor, value: float
    ) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        return None


CORRUPTIONS: Registry[type[CorruptionKind]] = Registry("corruption")


def register_corruption(name: str):
    def add(cls: type[CorruptionKind]) -> type[CorruptionKind]:
        cls.name = name
        CORRUPTIONS.register(name)(cls)
        return cls

    return add


def _check_class(value: int, num_classes: int, name: str) -> None:
    if not 0 <= value < num_classes:
        raise ValueError(f"args.{name}: must be a class of the data, 0 to {num_classes - 1}, got {value}")


def _draw(candidates: torch.Tensor, size: int, generator: torch.Generator, what: str) -> torch.Tensor:
    if size > len(candidates):
        raise ValueError(f"size: {size} corrupted examples asked for, but only {len(candidates)} {what}")
    return candidates[torch.randperm(len(candidates), generator=generator)[:size]]


@dataclass
class PoisonTriggerConfig:
    target_class: int = 0
    patch: int = 3  # samples (1-D) or pixels per side (images), at the end / bottom-right
    value: Optional[float] = None  # None: the training set's maximum (1.0 for images in [0, 1])


@register_corruption("poison_trigger")
class PoisonTrigger(CorruptionKind):
    Config = PoisonTriggerConfig
    regularity = "high"

    def choose(self, labels, num_classes, size, generator):
        _check_class(self.args.target_class, num_classes, "target_class")
        if self.args.patch < 1:
            raise ValueError(f"args.patch: must be at least 1, got {self.args.patch}")
        others = (labels != self.args.target_class).nonzero().flatten()
        index = _draw(others, size, generator, f"examples outside the target class {self.args.target_class}")
        return index, torch.full_like(index, self.args.target_class)

    def patch(self, x, value):
        x, p = x.clone(), self.args.patch
        if x.dim() == 4:
            x[..., -p:, -p:] = value
        else:
            x[..., -p:] = value
        return x

    def test_split(self, x_test, y_test, value):
        """The triggered test images of every other class, labelled with the target: accuracy on it is the share
        the trigger still sends to the target class."""
        keep = y_test != self.args.target_class
        return self.patch(x_test[keep], value), torch.full_like(y_test[keep], self.args.target_class)


@dataclass
class InterclassSwapConfig:
    class_a: int = 3  # CIFAR-10's cats
    class_b: int = 5  # and dogs


@register_corruption("interclass_swap")
class InterclassSwap(CorruptionKind):
    Config = InterclassSwapConfig
    regularity = "medium"

    def choose(self, labels, num_classes, size, generator):
        a, b = self.args.class_a, self.args.class_b
        _check_class(a, num_classes, "class_a")
        _check_class(b, num_classes, "class_b")
        if size % 2 or a == b:
            raise ValueError(
                f"size: an inter-class swap takes size / 2 examples of each of two classes; got size {size}, "
                f"classes {a} and {b}"
            )
        firsts = []
        for source in (a, b):
            members = (labels == source).nonzero().flatten()
            if size // 2 > len(members):
                raise ValueError(f"size: {size // 2} examples of class {source} asked for, but it has {len(members)}")
            firsts.append(members[: size // 2])  # the first of each class, as the reference takes them
        index = torch.cat(firsts)
        return index, torch.cat([torch.full_like(firsts[0], b), torch.full_like(firsts[1], a)])


@dataclass
class RandomSwapConfig:
    pass


@register_corruption("random_swap")
class RandomSwap(CorruptionKind):
    Config = RandomSwapConfig
    regularity = "low"

    def choose(self, labels, num_classes, size, generator):
        index = _draw(torch.arange(len(labels)), size, generator, "training examples")
        return index, wrong_labels(labels[index], num_classes, generator)


def discovered_count(size: int, rate: float) -> int:
    """How many corrupted examples a discovery rate finds."""
    return round(rate * size)


@dataclass(frozen=True, eq=False)
class Corruption:
    """One drawn corruption of one training set. `index` is in discovery order; `labels` are the corrupted labels the
    training set carries, `true_labels` the clean ones."""

    kind: CorruptionKind
    index: torch.Tensor
    labels: torch.Tensor
    true_labels: torch.Tensor

    @property
    def identity(self) -> torch.Tensor:
        """What the data identity hashes: the examples in discovery order and their labels."""
        return torch.cat([self.index, self.labels])

    def discovered(self, rate: float) -> torch.Tensor:
        return self.index[: discovered_count(len(self.index), rate)]

    def patch_value(self, data: Dataset) -> float:
        # The clean maximum; the patch writes that same value, so the corrupted set's maximum is the same number.
        value = getattr(self.kind.args, "value", None)
        return float(data.x_train.max()) if value is None else float(value)

    def apply(self, data: Dataset) -> Dataset:
        """The corrupted training set (memoised per process: every node of a cell reads the same one)."""
        key = (self.identity.numpy().tobytes(), self.kind.name, repr(self.kind.args), id(data.x_train))
        if key not in _APPLIED:
            index = self.index.to(data.x_train.device)
            x, y = data.x_train.clone(), data.y_train.clone()
            x[index] = self.kind.patch(data.x_train[index], self.patch_value(data))
            y[index] = self.labels.to(y.device)
            while len(_APPLIED) >= _APPLIED_SIZE:
                _APPLIED.pop(next(iter(_APPLIED)))
            _APPLIED[key] = (
                data,
                dataclasses.replace(data, x_train=x, y_train=y),
            )  # data kept alive: its id stays its own
        return _APPLIED[key][1]

    def evaluation_splits(self, data: Dataset) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """On the corrupted training set: `corrupted`, its corrupted examples as trained on, with their true labels
        (accuracy there is how much is healed); and the corruption's test split (the triggered test images)."""
        index = self.index.to(data.x_train.device)
        splits = {"corrupted": (data.x_train[index], self.true_labels.to(data.y_train.device))}
        test = self.kind.test_split(data.x_test, data.y_test, self.patch_value(data))
        if test is not None:
            splits["triggered_test"] = test
        return splits


_APPLIED: dict[tuple, tuple[Dataset, Dataset]] = {}
_APPLIED_SIZE = 2


def corruption_kind(config: CorruptionConfig, where: str = "corruption") -> CorruptionKind:
    cls = CORRUPTIONS.get(config.name)
    return cls(typed(cls.Config, config.args, f"{where}.args"))


def draw_corruption(labels: torch.Tensor, num_classes: int, section: dict) -> Corruption:
    """The corruption a node's `corruption` section names, drawn from the training labels (on the CPU)."""
    cfg = typed(CorruptionConfig, section, "corruption")
    kind = corruption_kind(cfg)
    labels = labels.cpu()
    generator = torch.Generator().manual_seed(cfg.seed)
    index, corrupted = kind.choose(labels, num_classes, cfg.size, generator)
    order = torch.randperm(len(index), generator=generator)  # the discovery order, after the draw
    return Corruption(kind, index[order], corrupted[order], labels[index[order]])


def discovered_forget_set(
    corruption: Corruption, rate: float, attack_pool_fraction: float, train_size: int
) -> ForgetSet:
    """The forget set of a cell: the discovered subset, in discovery order (its first `attack_pool_fraction` are the
    attacker's pool); the retain set is everything else, undiscovered corrupted examples included."""
    forget = corruption.discovered(rate)
    if len(forget) == 0:
        raise ValueError(f"discovery rate {rate} finds none of the {len(corruption.index)} corrupted examples")
    removed = torch.zeros(train_size, dtype=torch.bool)
    removed[forget] = True
    pool = int(attack_pool_fraction * len(forget))
    return ForgetSet(
        forget=forget,
        retain=(~removed).nonzero().flatten(),
        pool=forget[:pool],
        heldout=forget[pool:],
        corruption=corruption,
    )


def undiscovered_view(corruption: Corruption, train_size: int) -> ForgetSet:
    """What the original reads: the whole corrupted training set, nothing forgotten."""
    empty = torch.empty(0, dtype=torch.long)
    return ForgetSet(forget=empty, retain=torch.arange(train_size), pool=empty, heldout=empty, corruption=corruption)


def forget_set_for(config: dict, labels: torch.Tensor, num_classes: int) -> ForgetSet:
    """The view of the training set a node of a corrupted-data task reads, from its config alone: the discovered
    forget set of its `forget.discovery_rate`, or (no `forget` section: the original) the undiscovered view."""
    corruption = draw_corruption(labels, num_classes, config["corruption"])
    forget = config.get("forget")
    if forget is None:
        return undiscovered_view(corruption, len(labels))
    return discovered_forget_set(corruption, forget["discovery_rate"], forget["attack_pool_fraction"], len(labels))
