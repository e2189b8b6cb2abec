"""Which training examples to forget, and how the relearning attacker may use them.

The forget set is a fraction of one target class (or of all classes), picked at random or by memorization score.
Its examples are then permuted once: the first `attack_pool_fraction` are the pool a relearning attacker may train
on, the rest are the held-out forget examples on which recovery is always measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

CRITERIA = ("random", "high_mem", "low_mem")


@dataclass
class ForgetConfig:
    target_class: Optional[int] = 0  # null: draw from all classes
    fraction: float = 0.1
    criterion: str = "random"  # random | high_mem | low_mem
    seed: int = 0
    attack_pool_fraction: float = 0.2


@dataclass(frozen=True)
class ForgetSet:
    forget: torch.Tensor  # indices into the training set, in attack order (pool first, then held-out)
    retain: torch.Tensor  # sorted indices of everything else
    pool: torch.Tensor
    heldout: torch.Tensor


def select_forget_set(labels: torch.Tensor, cfg: ForgetConfig, memorization: Optional[torch.Tensor] = None) -> ForgetSet:
    if cfg.criterion not in CRITERIA:
        raise ValueError(f"forget.criterion must be one of {CRITERIA}, got {cfg.criterion!r}")
    if cfg.criterion != "random" and memorization is None:
        raise ValueError(f"forget.criterion={cfg.criterion} needs memorization scores")
    generator = torch.Generator().manual_seed(cfg.seed)
    labels = labels.cpu()
    candidates = torch.arange(len(labels)) if cfg.target_class is None else (labels == cfg.target_class).nonzero().flatten()
    count = round(cfg.fraction * len(candidates))
    if count < 1:
        raise ValueError(f"forget.fraction={cfg.fraction} selects no example out of {len(candidates)} candidates")
    # A seeded shuffle first, so ties in the score are broken at random rather than by position in the file.
    candidates = candidates[torch.randperm(len(candidates), generator=generator)]
    if cfg.criterion != "random":
        scores = memorization.cpu()[candidates]
        candidates = candidates[torch.sort(scores, descending=cfg.criterion == "high_mem", stable=True).indices]
    chosen = candidates[:count]
    forget = chosen[torch.randperm(count, generator=generator)]
    pool_size = int(cfg.attack_pool_fraction * count)
    is_forget = torch.zeros(len(labels), dtype=torch.bool)
    is_forget[forget] = True
    return ForgetSet(forget=forget, retain=(~is_forget).nonzero().flatten(), pool=forget[:pool_size], heldout=forget[pool_size:])
