"""Which training examples to forget, and how the relearning attacker may use them.

The forget set is a fraction of one target class (or of all classes), picked at random or by memorization score.
Its examples are then permuted once: the first `attack_pool_fraction` are the pool a relearning attacker may train
on, the rest are the held-out forget examples on which recovery is always measured.

Canaries (optional) are further examples from the same candidates, given random wrong labels in the training set
itself (so the original memorises them) and unlearned together with the forget set.

A corrupted-data task (workloads/corruptions.py) builds its forget sets there, from the discovered corrupted examples;
they carry the corruption, which `training_data` applies to the training set every node of the task reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import torch

CRITERIA = ("random", "high_mem", "low_mem", "worst_case")
# The criteria that rank candidates by memorization scores (a `memorization` node); `worst_case` ranks them by the
# weights of a worst-case selection (a `select_forget` node per original, workloads/selection.py).
MEMORIZATION_CRITERIA = ("high_mem", "low_mem")
DESCENDING = ("high_mem", "worst_case")  # the highest score first


@dataclass
class ForgetConfig:
    target_class: Optional[int] = 0  # null: draw from all classes
    fraction: float = 0.1
    criterion: str = "random"  # random | high_mem | low_mem | worst_case
    seed: int = 0
    attack_pool_fraction: float = 0.2
    canary_fraction: float = 0.0  # of the candidates, relabelled at random and forgotten with the forget set


@dataclass(frozen=True)
class ForgetSet:
    forget: torch.Tensor  # indices into the training set, in attack order (pool first, then held-out)
    retain: torch.Tensor  # sorted indices of everything else
    pool: torch.Tensor
    heldout: torch.Tensor
    canaries: torch.Tensor = torch.empty(0, dtype=torch.long)
    canary_labels: torch.Tensor = torch.empty(0, dtype=torch.long)  # the wrong labels they are trained with
    # A workloads.corruptions.Corruption of the training set, or None (typed loosely: that module builds on this one).
    corruption: Optional[Any] = None

    @property
    def unlearn(self) -> torch.Tensor:
        """What unlearning methods forget: the forget set and the canaries."""
        return torch.cat([self.forget, self.canaries])

    def training_data(self, data):
        """The training set every model of this forget set trains on: corrupted, then canaries relabelled; `data`
        itself when neither applies."""
        if self.corruption is not None:
            data = self.corruption.apply(data)
        if len(self.canaries):
            data = dataclasses.replace(data, y_train=self.training_labels(data.y_train))
        return data

    def training_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The training labels every model trains on: canaries carry their wrong labels."""
        if len(self.canaries) == 0:
            return labels
        labels = labels.clone()
        labels[self.canaries.to(labels.device)] = self.canary_labels.to(labels.device)
        return labels


def wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """(y + U{1..C-1}) mod C: uniformly one of the other classes, never y."""
    return (labels + torch.randint(1, num_classes, labels.shape, generator=generator)) % num_classes


def attack_pool_size(labels: torch.Tensor, cfg: ForgetConfig) -> int:
    """How many forget examples a relearning attacker may draw from (known before any model exists)."""
    candidates = len(labels) if cfg.target_class is None else int((labels == cfg.target_class).sum())
    return int(cfg.attack_pool_fraction * round(cfg.fraction * candidates))


def forget_set_problem(labels: torch.Tensor, num_classes: int, cfg: ForgetConfig) -> Optional[tuple[str, str]]:
    """(key, why) when `cfg` cannot select a usable forget set from these training labels, None when it can: the target
    class must exist and the fraction must select an example (attack_pool_fraction < 1 then leaves one held out)."""
    if cfg.target_class is not None and not 0 <= cfg.target_class < num_classes:
        return (
            "forget.target_class",
            f"{cfg.target_class} is not a class of this dataset (classes 0 to {num_classes - 1})",
        )
    candidates = len(labels) if cfg.target_class is None else int((labels == cfg.target_class).sum())
    count = round(cfg.fraction * candidates)
    if count < 1:
        return "forget.fraction", f"{cfg.fraction} selects no example out of {candidates} candidates"
    return None


def candidates_of(labels: torch.Tensor, target_class: Optional[int]) -> torch.Tensor:
    """The training rows a forget set is drawn from: the target class's, or every row."""
    return torch.arange(len(labels)) if target_class is None else (labels == target_class).nonzero().flatten()


def select_forget_set(
    labels: torch.Tensor,
    cfg: ForgetConfig,
    memorization: Optional[torch.Tensor] = None,
    num_classes: Optional[int] = None,
) -> ForgetSet:
    if cfg.criterion not in CRITERIA:
        raise ValueError(f"forget.criterion must be one of {CRITERIA}, got {cfg.criterion!r}")
    if cfg.criterion != "random" and memorization is None:
        raise ValueError(f"forget.criterion={cfg.criterion} needs scores (memorization, or a worst-case selection)")
    generator = torch.Generator().manual_seed(cfg.seed)
    labels = labels.cpu()
    problem = forget_set_problem(labels, num_classes or int(labels.max()) + 1, cfg)
    if problem is not None:
        raise ValueError(f"{problem[0]}: {problem[1]}")
    candidates = candidates_of(labels, cfg.target_class)
    count = round(cfg.fraction * len(candidates))
    # A seeded shuffle first, so ties in the score are broken at random rather than by position in the file.
    candidates = candidates[torch.randperm(len(candidates), generator=generator)]
    if cfg.criterion != "random":
        scores = memorization.cpu()[candidates]
        candidates = candidates[torch.sort(scores, descending=cfg.criterion in DESCENDING, stable=True).indices]
    chosen = candidates[:count]
    forget = chosen[torch.randperm(count, generator=generator)]
    pool_size = int(cfg.attack_pool_fraction * count)
    canaries = candidates[count : count + int(cfg.canary_fraction * len(candidates))]
    if cfg.canary_fraction > 0 and (len(canaries) == 0 or count + len(canaries) > len(candidates)):
        raise ValueError(f"forget.canary_fraction={cfg.canary_fraction}: no room for canaries beside the forget set")
    removed = torch.zeros(len(labels), dtype=torch.bool)
    removed[forget] = True
    removed[canaries] = True
    canary_labels = wrong_labels(labels[canaries], num_classes or int(labels.max()) + 1, generator)
    return ForgetSet(
        forget=forget,
        retain=(~removed).nonzero().flatten(),
        pool=forget[:pool_size],
        heldout=forget[pool_size:],
        canaries=canaries,
        canary_labels=canary_labels,
    )
