"""Distributional scores, registered by name: functions of two populations' per-member outputs (workloads/population.py)
that say how far one population of models is from another, example by example. The `population_score` node runs
every registered score on a candidate population (N unlearning runs, or an independent retrained population: the
null) against the reference (N models retrained without the forget set), as the scores' sources define them:

- `forget_quality` (workloads/forget_quality.py): the NeurIPS 2023 Machine Unlearning competition's F, per-example
  epsilon, and its final score F x retain accuracy ratio x test accuracy ratio;
- `klom` (workloads/klom.py): the Easy Data Unlearning Bench's KL of margins, as percentiles over the forget, retain
  and test examples.

A score is f(candidate, reference, config, forget_rows) -> (numbers, tensors): `numbers` flat JSON values (into the
node's result, summary.json and MLflow), `tensors` per-example values kept as the node's artifact. `forget_rows` picks
the forget examples scored: all of them, or the held-out ones (after a relearning attack that gave some away).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from workloads.forget_quality import ForgetQualityConfig, final_score, forget_quality, logit_scaled_confidence
from workloads.klom import MARGINS, KLoMConfig, binned_kl, margins, percentiles
from workloads.registry import Registry

FORGET_ROWS = ("forget", "heldout_forget")


@dataclass
class ScoreConfig:
    forget_quality: ForgetQualityConfig = field(default_factory=ForgetQualityConfig)
    klom: KLoMConfig = field(default_factory=KLoMConfig)
    by_n: bool = True  # also score the first 8, 16, 32, ... members of each population: how the null climbs with N


Outputs = dict[str, torch.Tensor]  # a population's member outputs, members stacked in rows (population.py)
Score = Callable[[Outputs, Outputs, ScoreConfig, str], tuple[dict, dict[str, torch.Tensor]]]
SCORES: Registry[Score] = Registry("distributional score")


def check_score_config(cfg: ScoreConfig) -> None:
    """ValueError naming the key of a value no score can run with."""
    if cfg.klom.margin not in MARGINS:
        raise ValueError(f"klom.margin: must be one of {', '.join(MARGINS)}, got {cfg.klom.margin!r}")
    if cfg.klom.bins < 1 or cfg.klom.clip <= 0 or not all(0 <= q <= 100 for q in cfg.klom.percentiles):
        raise ValueError("klom: bins >= 1, clip > 0 and percentiles within [0, 100] are needed")
    fq = cfg.forget_quality
    if fq.thresholds_per_unit < 1 or fq.bucket_width <= 0 or fq.buffer <= 0 or not 0 < fq.delta < 1:
        raise ValueError("forget_quality: thresholds_per_unit >= 1, bucket_width > 0, buffer > 0, 0 < delta < 1")


def register_score(name: str):
    def add(score: Score) -> Score:
        SCORES.register(name)(score)
        return score

    return add


def forget_logits(outputs: Outputs, rows: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The forget logits (members, examples, classes) and labels of the rows scored: all, or the held-out ones."""
    logits, labels = outputs["logits_forget"], outputs["labels_forget"]
    if rows == "heldout_forget":
        keep = outputs["heldout"].bool()
        return logits[:, keep], labels[keep]
    return logits, labels


def accuracies(outputs: Outputs) -> dict[str, torch.Tensor]:
    return {split: outputs[f"acc_{split}"] for split in ("retain", "test", "forget", "heldout_forget")}


def prefixes(members: int) -> list[int]:
    """8, 16, 32, ... below `members`, then `members`: the population sizes `by_n` scores."""
    sizes, n = [], 8
    while n < members:
        sizes.append(n)
        n *= 2
    return [*sizes, members]


@register_score("forget_quality")
def forget_quality_score(candidate: Outputs, reference: Outputs, cfg: ScoreConfig, rows: str):
    """F, the final score and its accuracy ratios, the mean accuracies, F at each prefix; epsilon per example."""
    c_logits, labels = forget_logits(candidate, rows)
    r_logits, _ = forget_logits(reference, rows)
    c_conf, r_conf = logit_scaled_confidence(c_logits, labels), logit_scaled_confidence(r_logits, labels)
    quality, eps = forget_quality(c_conf, r_conf, cfg.forget_quality)
    numbers = {"forget_quality": quality, **final_score(quality, accuracies(candidate), accuracies(reference))}
    for split, values in accuracies(candidate).items():
        numbers[f"{split}_acc"] = values.double().mean().item()
    if cfg.by_n:
        numbers["forget_quality_by_n"] = {
            str(n): forget_quality(c_conf[:n], r_conf[:n], cfg.forget_quality)[0] for n in prefixes(len(c_conf))
        }
    numbers["epsilons"] = [round(e, 4) for e in eps.tolist()]
    return numbers, {"epsilons": eps, "confidence": c_conf}


@register_score("klom")
def klom_score(candidate: Outputs, reference: Outputs, cfg: ScoreConfig, rows: str):
    """KL(candidate || reference) of each example's margins, as percentiles over each split's examples."""
    numbers, tensors = {}, {}
    for split in ("forget", "retain", "test"):
        if split == "forget":
            (c_logits, labels), (r_logits, _) = forget_logits(candidate, rows), forget_logits(reference, rows)
        else:
            c_logits, r_logits, labels = (
                candidate[f"logits_{split}"],
                reference[f"logits_{split}"],
                candidate[f"labels_{split}"],
            )
        if labels.numel() == 0:
            continue
        kl = binned_kl(margins(c_logits, labels, cfg.klom.margin), margins(r_logits, labels, cfg.klom.margin), cfg.klom)
        tensors[f"klom_{split}"] = kl
        numbers |= {f"klom_{split}_{name}": value for name, value in percentiles(kl, cfg.klom.percentiles).items()}
    return numbers, tensors


def score_populations(candidate: Outputs, reference: Outputs, cfg: ScoreConfig, rows: str) -> tuple[dict, dict]:
    """Every registered score, in name order."""
    numbers, tensors = {}, {}
    for name in SCORES:
        more, kept = SCORES.get(name)(candidate, reference, cfg, rows)
        numbers |= more
        tensors |= kept
    return numbers, tensors
