"""The reference scorers read step by step: one example at a time, in NumPy on the CPU (and torch.linspace where the
reference calls it), every rate and threshold materialised as the reference materialises them. Slow on purpose:
tests/test_distributional.py holds the vectorised scores (forget_quality.py, klom.py) to these loops, and
benchmarks/distributional.py times the two side by side.

- `reference_epsilon`: google-deepmind/unlearning_evaluation metric.py `_get_epsilons` for one example, with
  `_get_double_threshold_rates` and `_get_single_threshold_rates` (positive = the population with the larger median,
  as `compute_forget_score_from_confs` assigns it). Where metric.py cannot run (its `assert thr_eps` on a NumPy
  array; no surviving threshold) this reads its intent, as forget_quality.py does.
- `reference_binned_kl`: the Easy Data Unlearning Bench's per-example KL of binned margins (EasyDUB-code
  easydub/eval.py `binned_kl_divergence`; data-unlearning-bench src/eval.py `compute_binned_KL_div`, which also
  renormalises q through scipy.stats.entropy: `renormalize`).
"""

from __future__ import annotations

import numpy as np
import torch

from workloads.forget_quality import ForgetQualityConfig


def _rates(positive_in: np.ndarray, negative_in: np.ndarray) -> tuple[np.ndarray, ...]:
    """(tpr, fnr, fpr, tnr) as float32 means over models of 'predicted positive' masks (models x thresholds)."""
    n = np.float32(positive_in.shape[0])
    tp, fp = positive_in.sum(0).astype(np.float32), negative_in.sum(0).astype(np.float32)
    return tp / n, (n - tp) / n, fp / n, (n - fp) / n


def _double_rates(positive: np.ndarray, negative: np.ndarray, cfg: ForgetQualityConfig):
    pos_spread, neg_spread = positive.max() - positive.min(), negative.max() - negative.min()
    width = neg_spread if pos_spread > neg_spread else pos_spread
    if pos_spread >= neg_spread:  # the peakier population is the positive one of this rule
        positive, negative = negative, positive
    low, high = positive.min() + width - cfg.buffer, positive.max() + cfg.buffer
    rights = np.linspace(low, high, num=int(np.ceil((high - low) * cfg.thresholds_per_unit)))
    per_right = int(np.ceil(2 * cfg.buffer * cfg.thresholds_per_unit))
    lefts = np.concatenate([np.linspace(r - width - cfg.buffer, r - width + cfg.buffer, num=per_right) for r in rights])
    rights = np.repeat(rights, per_right)
    inside = lambda c: (lefts[None, :] <= c[:, None]) & (c[:, None] <= rights[None, :])
    return _rates(inside(positive), inside(negative))


def _single_rates(positive: np.ndarray, negative: np.ndarray, cfg: ForgetQualityConfig):
    both = np.concatenate([positive, negative])
    low, high = torch.tensor(both.min()), torch.tensor(both.max())
    thresholds = torch.linspace(low, high, int(torch.ceil((high - low) * cfg.thresholds_per_unit))).numpy()
    return _rates(positive[:, None] >= thresholds[None, :], negative[:, None] >= thresholds[None, :])


def reference_epsilon(positive: np.ndarray, negative: np.ndarray, cfg: ForgetQualityConfig) -> float:
    """Epsilon of one example from its float64 confidences under the positive and the negative population."""
    pos_spread, neg_spread = positive.max() - positive.min(), negative.max() - negative.min()
    largest, smallest = max(pos_spread, neg_spread), min(pos_spread, neg_spread)
    with np.errstate(divide="ignore", invalid="ignore"):
        if smallest / largest < cfg.peaky_ratio:
            return float(cfg.epsilon_cap)
        double, single = _double_rates(positive, negative, cfg), _single_rates(positive, negative, cfg)
        tpr, fnr, fpr, tnr = (np.concatenate([d, s]) for d, s in zip(double, single))
        eps = np.zeros(len(tpr), dtype=np.float32)
        eps[(fpr + fnr == 0) & (tpr + tnr == 2)] = np.inf
        eps[(eps == 0) & (fpr * fnr == 0)] = np.nan
        keep = np.float32(1 - cfg.delta)
        computed = np.clip(np.nanmax([np.log(keep - fpr) - np.log(fnr), np.log(keep - fnr) - np.log(fpr)], 0), 0, None)
        eps = np.where(eps == 0, computed, eps)
    kept = eps[~np.isnan(eps)]
    return float(min(kept.max(), cfg.epsilon_cap)) if len(kept) else 0.0


def reference_epsilons(unlearned: np.ndarray, retrained: np.ndarray, cfg: ForgetQualityConfig) -> np.ndarray:
    """(N, n) float64 confidences of each population -> (n,) epsilons, one example after another."""
    retrain_positive = np.median(retrained, axis=0) > np.median(unlearned, axis=0)
    positive = np.where(retrain_positive, retrained, unlearned)
    negative = np.where(retrain_positive, unlearned, retrained)
    return np.array([reference_epsilon(positive[:, i], negative[:, i], cfg) for i in range(positive.shape[1])])


def reference_forget_quality(unlearned: np.ndarray, retrained: np.ndarray, cfg: ForgetQualityConfig) -> float:
    """The bucketed score: metric.py `compute_forget_score_from_confs`'s loop over buckets and examples."""
    eps = reference_epsilons(unlearned, retrained, cfg)
    top = np.ceil(np.log(unlearned.shape[0] - 1))
    buckets, start, points = {}, 0.0, 1.0
    while start + cfg.bucket_width <= top:
        buckets[start], points, start = points, points / 2, start + cfg.bucket_width
    total = 0.0
    for e in eps:
        for first, worth in buckets.items():
            if e < first + cfg.bucket_width:
                total += worth
                break
    return total / len(eps)


def reference_binned_kl(
    p: np.ndarray,
    q: np.ndarray,
    bins: int = 20,
    eps: float = 1e-5,
    clip: float = 100.0,
    renormalize: bool = False,
) -> float:
    """KL(p || q) of two 1-D samples on shared histogram bins over their joint (clipped) range."""
    p, q = np.clip(p, -clip, clip), np.clip(q, -clip, clip)
    start, end = min(p.min(), q.min()), max(p.max(), q.max())
    if start >= end:
        end = start + 1
    edges = np.linspace(start, end, bins + 1)
    p_bins, q_bins = np.digitize(p, edges), np.digitize(q, edges)
    p_counts = np.array([np.sum(p_bins == i) for i in range(1, bins + 1)])
    q_counts = np.array([np.sum(q_bins == i) for i in range(1, bins + 1)])
    p_probs = p_counts / p_counts.sum() if p_counts.sum() > 0 else np.zeros(bins)
    q_probs = q_counts / q_counts.sum() if q_counts.sum() > 0 else np.zeros(bins)
    q_safe = np.where(p_probs > 0, np.maximum(q_probs, eps), q_probs)
    if renormalize:
        q_safe = q_safe / q_safe.sum()
    mask = p_probs > 0
    return float(np.sum(p_probs[mask] * np.log(p_probs[mask] / q_safe[mask])))
