"""Feldman & Zhang memorization estimates from models trained on random subsets.

mem_i = mean correctness on i over models that trained on i - mean correctness over models that did not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import torch
from torch import nn

from workloads.train import TrainConfig, predict, train_classifier


@dataclass
class MemorizationConfig:
    scores_file: Optional[str] = None  # C-scores (npz: labels, scores); memorization = 1 - score. Else: estimate.
    num_models: int = 16
    subset_fraction: float = 0.7
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)


def memorization_from(included: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """(models, examples) boolean masks -> per-example score; 0 where an example was never (or always) included."""
    included, correct = included.float(), correct.float()
    n_in, n_out = included.sum(0), (1 - included).sum(0)
    acc_in = (correct * included).sum(0) / n_in.clamp(min=1)
    acc_out = (correct * (1 - included)).sum(0) / n_out.clamp(min=1)
    return torch.where((n_in > 0) & (n_out > 0), acc_in - acc_out, torch.zeros_like(acc_in))


def subset_masks(num_models: int, num_examples: int, fraction: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_models, num_examples, generator=generator) < fraction


def estimate_memorization(new_model: Callable[[int], nn.Module], x: torch.Tensor, y: torch.Tensor,
                          cfg: MemorizationConfig, augment=None) -> dict:
    """Trains cfg.num_models models, model m on subset m; returns scores plus the masks and correctness behind them."""
    included = subset_masks(cfg.num_models, len(y), cfg.subset_fraction, cfg.seed).to(x.device)
    correct = torch.zeros(cfg.num_models, len(y), dtype=torch.bool, device=x.device)
    for m in range(cfg.num_models):
        model = new_model(cfg.seed * 1000 + m).to(x.device)
        subset = included[m].nonzero().flatten()
        train_classifier(model, x[subset], y[subset], cfg.train, seed=cfg.seed * 1000 + m, augment=augment)
        correct[m] = predict(model, x).argmax(1) == y
    return {"scores": memorization_from(included, correct), "included": included, "correct": correct}


def memorization_from_cscores(path: str | Path, train_labels: torch.Tensor) -> torch.Tensor:
    """C-scores (Jiang et al.) for the training set, in its order, as memorization = 1 - score."""
    with np.load(path) as data:
        missing = {"labels", "scores"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: C-score file lacks {sorted(missing)} (needs arrays 'labels' and 'scores')")
        labels, scores = torch.as_tensor(data["labels"]).long(), torch.as_tensor(data["scores"]).float()
    if len(labels) != len(train_labels) or not torch.equal(labels, train_labels.cpu().long()):
        raise ValueError(f"{path}: its labels do not match the training set's ({len(labels)} vs {len(train_labels)} examples)")
    return 1.0 - scores
