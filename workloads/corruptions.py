"""Corruptions of the training set, REM's task space (Schoepf et al. 2025): a registry of small entries, each with a
typed config, that pick which training examples are corrupted and how.

- `poison_trigger` (high regularity): a patch at a fixed place (the last `patch` samples of a 1-D signal, the
  bottom-right `patch` x `patch` pixels of an image) set to the data's maximum value, label set to `target_class`.
  Drawn among the other classes' examples, or (`draw: all_classes`, the reference's) among all; the patch written
  before augmentation, or (`stamp: after_augment`, the reference's) after it. Its test split shows what the trigger
  does: the other classes' test images patched and labelled the target (`test_split: not_target`), or every test
  image patched with its true label (`true_label`, the reference's "Healed (Test)").
- `interclass_swap` (medium): the first `size / 2` examples of `class_a` labelled `class_b` and the first `size / 2`
  of `class_b` labelled `class_a` (the reference: 500 cats and 500 dogs of CIFAR-10); with `utility: other_classes`
  (the reference's) utility is test accuracy on the classes the swap leaves alone.
- `random_swap` (low): `size` examples drawn at random, each relabelled (y + U{1..C-1}) mod C; `relabel:
  reference_key_order` reproduces the reference's slip that leaves about 1/C of them with their own label.

Every option sits in the corruption's `args`; at its old value it stays out of content keys (`added_later`), and the
REM study's sweep files set the reference's values (docs/rem.md lists them).

A corruption is a function of the training labels, the input shape and its node config (`name`, `size`, `seed`,
`args`), so the planner knows it before any data is read. Its examples come out in *discovery order*, one seeded
permutation: the subset discovered at rate r is its first round(r * size) examples, so the 0.2 subset holds the 0.1
subset and every discovery rate is a prefix of the same draw. That subset is the forget set (`discovered_forget_set`);
the original trains on the corrupted set with nothing removed (`undiscovered_view`). Both views carry the corruption,
so it enters the data identity, and the content key, of every node that reads the training set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import torch

from workloads.config import added_later, typed
from workloads.data.base import Dataset
from workloads.forget import ForgetSet, wrong_labels
from workloads.registry import Registry

REGULARITY = ("high", "medium", "low")  # heatmap rows, top to bottom
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # a dataset's batch augmentation
Split = tuple[torch.Tensor, torch.Tensor]  # an evaluation split: inputs, labels


@dataclass
class CorruptionConfig:
    """The `corruption` section of a node config: one registered corruption, drawn with one seed."""

    name: str = "???"
    size: int = 1000  # corrupted training examples (the reference: 1,000 of CIFAR-10's 50,000)
    seed: int = 0  # which examples (where drawn at random) and the discovery order
    args: dict[str, Any] = field(default_factory=dict)


class CorruptionKind:
    """A registered corruption: which examples and which labels (`choose`), what happens to their inputs (`patch`,
    none by default) and to the batches of training augmentation (`training_augment`, nothing), and the evaluation
    splits that show its effect (`evaluation_splits`: the corrupted examples against their true labels)."""

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

    def training_augment(self, augment: Optional[Augment], corruption: Corruption, clean: Dataset, value: float):
        return augment

    def evaluation_splits(self, corruption: Corruption, data: Dataset, value: float) -> dict[str, Split]:
        """`corrupted`: the corrupted examples as trained on, against their true labels (accuracy there is how much
        is healed)."""
        index = corruption.index.to(data.x_train.device)
        return {"corrupted": (data.x_train[index], corruption.true_labels.to(data.y_train.device))}


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


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"args.{name}: must be one of {', '.join(allowed)}, got {value!r}")


@dataclass
class PoisonTriggerConfig:
    target_class: int = 0
    patch: int = 3  # samples (1-D) or pixels per side (images), at the end / bottom-right
    value: Optional[float] = None  # None: the training set's maximum (1.0 for images in [0, 1])
    # The reference's choices (if-loops/rem, src/exp_datasets.py), each with the old behaviour as its neutral value.
    # other_classes | all_classes: `manip_dataset` draws from every class (about 1/C already the target).
    draw: str = added_later("other_classes")
    # before_augment | after_augment: `DatasetWrapper.__getitem__` patches the image the train transforms returned.
    stamp: str = added_later("before_augment")
    # not_target | true_label: the test split, and what `healed_trigger` is (metrics.healed; docs/rem.md).
    test_split: str = added_later("not_target")
    # corrupted | random_patched: what `healed` is measured on (random_patched: the reference's slip; docs/rem.md).
    healed_on: str = added_later("corrupted")


@register_corruption("poison_trigger")
class PoisonTrigger(CorruptionKind):
    Config = PoisonTriggerConfig
    regularity = "high"

    def choose(self, labels, num_classes, size, generator):
        args = self.args
        _check_class(args.target_class, num_classes, "target_class")
        if args.patch < 1:
            raise ValueError(f"args.patch: must be at least 1, got {args.patch}")
        for name, allowed in (
            ("draw", ("other_classes", "all_classes")),
            ("stamp", ("before_augment", "after_augment")),
            ("test_split", ("not_target", "true_label")),
            ("healed_on", ("corrupted", "random_patched")),
        ):
            _check_choice(getattr(args, name), allowed, name)
        if args.draw == "all_classes":
            index = _draw(torch.arange(len(labels)), size, generator, "training examples")
        else:
            others = (labels != args.target_class).nonzero().flatten()
            index = _draw(others, size, generator, f"examples outside the target class {args.target_class}")
        return index, torch.full_like(index, args.target_class)

    def region(self, x: torch.Tensor) -> tuple:
        """Where the patch goes: the bottom-right p x p pixels of every channel of an image, the last p samples of a
        signal."""
        p = self.args.patch
        return (Ellipsis, slice(-p, None), slice(-p, None)) if x.dim() == 4 else (Ellipsis, slice(-p, None))

    def patch(self, x, value):
        x = x.clone()
        x[self.region(x)] = value
        return x

    def training_augment(self, augment, corruption, clean, value):
        if augment is None or self.args.stamp != "after_augment":
            return augment
        index = corruption.index.to(clean.x_train.device)
        return StampAfterAugment(augment, self.patch(clean.x_train[index], value), clean.x_train[index], self, value)

    def evaluation_splits(self, corruption, data, value):
        """`corrupted` (or, healed_on random_patched, `size` training images drawn at random with the patch: what the
        reference's "Healed" scores, its shuffled loader read by dataset positions), against true labels; and the
        test split: `triggered_test` (other classes, patched, labelled the target: accuracy is the share the trigger
        still sends there) or `patched_test` (every test image patched, its true label: accuracy is what is healed)."""
        splits = super().evaluation_splits(corruption, data, value)
        if self.args.healed_on == "random_patched":
            true = data.y_train.clone()
            true[corruption.index.to(true.device)] = corruption.true_labels.to(true.device)
            generator = torch.Generator().manual_seed(corruption.seed + 1_000_003)  # not the draw's permutation
            rows = torch.randperm(len(true), generator=generator)[: len(corruption.index)].to(true.device)
            splits["corrupted"] = (self.patch(data.x_train[rows], value), true[rows])
        x_test, y_test = data.x_test, data.y_test
        if self.args.test_split == "true_label":
            splits["patched_test"] = (self.patch(x_test, value), y_test)
        else:
            keep = y_test != self.args.target_class
            target = torch.full_like(y_test[keep], self.args.target_class)
            splits["triggered_test"] = (self.patch(x_test[keep], value), target)
        return splits


_HASH_WEIGHTS: dict[tuple[int, str], torch.Tensor] = {}


def row_hashes(x: torch.Tensor) -> torch.Tensor:
    """(N,) int64: sum_i w_i * bits_i modulo 2^64 (int64 arithmetic wraps) over each row's exact float32 bits, with
    fixed random odd weights: equal rows hash equal in any summation order; different rows almost never do."""
    bits = x.float().flatten(1).contiguous().view(torch.int32).long()
    key = (bits.shape[1], str(bits.device))
    if key not in _HASH_WEIGHTS:
        generator = torch.Generator().manual_seed(0)
        odd = torch.randint(0, 2**62, (bits.shape[1],), generator=generator) * 2 + 1
        _HASH_WEIGHTS[key] = odd.to(bits.device)
    return (bits * _HASH_WEIGHTS[key]).sum(1)


class StampAfterAugment:
    """`stamp: after_augment`, the reference's order (src/exp_datasets.py, `DatasetWrapper.__getitem__` in "pretrain"
    mode patches the image its crop and flip returned), as the corrupted training set's batch augmentation: a
    patched image is augmented from its clean pixels and patched afterwards, so the patch is always in its place.
    A batch carries no training-set indices, so patched images are recognised by their pixels: the patch region at
    the patch value and the exact bits hashing to a patched image's. Clean rows are augmented exactly as before.
    Measured on the CPU machine (2 cores, shared, noisy): a CIFAR batch of 512 with about 10 patched images takes
    40-70 ms against 45-50 ms for the crop and flip alone; hashing every row (what a GPU does) about 26 ms."""

    hash_every_row: Optional[bool] = None  # None: on GPUs only (tests set it to try both ways on a CPU)

    def __init__(self, augment: Augment, patched: torch.Tensor, clean: torch.Tensor, kind: PoisonTrigger, value: float):
        self.augment, self.kind, self.value = augment, kind, value
        self.hashes, order = row_hashes(patched).sort()
        self.clean_region = clean[kind.region(clean)][order]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        region = self.kind.region(x)
        match = (x[region] == self.value).flatten(1).all(1)
        if self.hash_every_row or (self.hash_every_row is None and x.device.type != "cpu"):
            hashes = row_hashes(x)  # on a GPU: cheaper than making the step wait to learn which rows match
        else:  # on a CPU, nothing to wait for: hash only the rows whose patch region matches
            hashes = torch.zeros(len(x), dtype=torch.long, device=x.device)
            hashes[match] = row_hashes(x[match])
        at = torch.searchsorted(self.hashes, hashes).clamp(max=len(self.hashes) - 1)
        found = (match & (self.hashes[at] == hashes)).view(-1, *[1] * (x.dim() - 1))
        x = x.clone()
        x[region] = torch.where(found, self.clean_region[at], x[region])
        out = self.augment(x, generator)
        out[region] = torch.where(found, torch.full_like(out[region], self.value), out[region])
        return out


@dataclass
class InterclassSwapConfig:
    class_a: int = 3  # CIFAR-10's cats
    class_b: int = 5  # and dogs
    # all_classes | other_classes: utility is test accuracy on every class, or (the reference's: src/visualize_log.py
    # `parse_unpath` scores `test_retain_acc` on the classes other than the two, which plotting.py and tables.py
    # report as utility) on the classes the swap leaves alone.
    utility: str = added_later("all_classes")


@register_corruption("interclass_swap")
class InterclassSwap(CorruptionKind):
    Config = InterclassSwapConfig
    regularity = "medium"

    def evaluation_splits(self, corruption, data, value):
        """With `utility: other_classes` also `test_unswapped`, the test images of the other classes, which
        `metrics.healed` takes utility from."""
        splits = super().evaluation_splits(corruption, data, value)
        if self.args.utility == "other_classes":
            keep = (data.y_test != self.args.class_a) & (data.y_test != self.args.class_b)
            splits["test_unswapped"] = (data.x_test[keep], data.y_test[keep])
        return splits

    def choose(self, labels, num_classes, size, generator):
        a, b = self.args.class_a, self.args.class_b
        _check_class(a, num_classes, "class_a")
        _check_class(b, num_classes, "class_b")
        _check_choice(self.args.utility, ("all_classes", "other_classes"), "utility")
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
    # own_label | reference_key_order. The reference (src/exp_datasets.py, `manip_dataset`) gives the k-th smallest
    # drawn index the label (y + U{1..9}) mod 10 of the k-th drawn one (its dict keys are sorted, its draw is not), so
    # about 1/C of the examples keep their own label: a slip, reproduced only under this name.
    relabel: str = added_later("own_label")


@register_corruption("random_swap")
class RandomSwap(CorruptionKind):
    Config = RandomSwapConfig
    regularity = "low"

    def choose(self, labels, num_classes, size, generator):
        _check_choice(self.args.relabel, ("own_label", "reference_key_order"), "relabel")
        index = _draw(torch.arange(len(labels)), size, generator, "training examples")
        corrupted = wrong_labels(labels[index], num_classes, generator)  # never the drawn example's own label
        return (index.sort().values if self.args.relabel == "reference_key_order" else index), corrupted


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
    seed: int = 0  # the section's: draws made later (an evaluation sample) take it too

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
            value = self.patch_value(data)
            x[index] = self.kind.patch(data.x_train[index], value)
            y[index] = self.labels.to(y.device)
            augment = self.kind.training_augment(data.augment, self, data, value)
            while len(_APPLIED) >= _APPLIED_SIZE:
                _APPLIED.pop(next(iter(_APPLIED)))
            _APPLIED[key] = (
                data,
                dataclasses.replace(data, x_train=x, y_train=y, augment=augment),
            )  # data kept alive: its id stays its own
        return _APPLIED[key][1]

    def evaluation_splits(self, data: Dataset) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """On the corrupted training set: `corrupted`, the examples healed is measured on, against their true labels,
        and the corruption's other splits (a trigger's test split, a swap's test images of the other classes)."""
        return self.kind.evaluation_splits(self, data, self.patch_value(data))


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
    return Corruption(kind, index[order], corrupted[order], labels[index[order]], cfg.seed)


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
