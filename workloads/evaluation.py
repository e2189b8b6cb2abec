"""What every evaluation of a model sees: clean images, or the dataset's training augmentation of them.

The reference evaluates retain, forget and held-out forget accuracy on augmented images (its evaluation loaders are
subsets of the augmented training set) and the test set on clean ones. Here the default is clean images for every
split: accuracy on the examples themselves is the question an unlearning metric asks, and a clean score has no
sampling noise. `evaluation.augment: true` scores the training-set splits the reference's way, on one augmented
draw of each image made with a fixed seed, so every model and every evaluation of a curve sees the same images
(the reference draws afresh each time). The test set stays clean either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch

from workloads.config import added_later

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
DRAW_SEED = 0  # one draw for every model, so the models of a sweep are scored on the same images


@dataclass
class EvaluationConfig:
    augment: bool = added_later(False)  # score retain / forget / held-out forget / canaries on augmented images


def scored_images(x: torch.Tensor, cfg: EvaluationConfig, augment: Optional[Augment]) -> torch.Tensor:
    """The images a training-set split is scored on: x itself, or one seeded augmented draw of it."""
    if not cfg.augment or augment is None or len(x) == 0:
        return x
    generator = torch.Generator().manual_seed(DRAW_SEED)  # the CPU's on every device, as every node's (train.py)
    return augment(x, generator)
