"""The forget quality of the NeurIPS 2023 Machine Unlearning competition (Triantafillou et al., "Are we making progress
in unlearning?", arXiv 2406.09073), computed as its scoring code computes it (google-deepmind/unlearning_evaluation,
`metric.py` and `main.py`), vectorised over examples and thresholds and on any device.

Given, per forget example, its logit-scaled confidence under N unlearned models and N retrained models:

1. `logit_scaled_confidence` (metric.py `compute_logit_scaled_confidence`): log p(y) - log(1 - p(y)) from a float32
   softmax shifted by the row's largest logit, normalised in float64, each term offset by 1e-45 (so it saturates
   near +-103.6 where float32 probabilities underflow).
2. Per example, the population with the larger median is "positive" (`compute_forget_score_from_confs`).
3. Per example (`_get_epsilons`): if the smaller spread (max - min) of the two populations is below `peaky_ratio`
   of the larger, epsilon is the cap. Otherwise two families of decision rules are scanned: single thresholds
   (`_get_single_threshold_rates`: `thresholds_per_unit` per unit of the joint range, from torch.linspace in float32,
   "positive" at or above), and pairs of thresholds around the peakier population (`_get_double_threshold_rates`:
   right thresholds from its max - 2 + its spread... to its max + 2, each with 400 left thresholds from
   right - spread - 2 to right - spread + 2, NumPy's linspace in float64, "peakier" inside [left, right]). For each
   threshold, with float32 rates: FPR = FNR = 0 gives infinity (perfect separation); FPR or FNR zero (not both)
   discards it; otherwise max(log(1 - delta - FPR) - log FNR, log(1 - delta - FNR) - log FPR), floored at 0. Epsilon
   is the largest, capped at `epsilon_cap`.
4. `bucket_points`: buckets of `bucket_width` in epsilon up to ceil(ln(N - 1)), the first worth 1 point, each next
   half the previous, nothing beyond; the forget quality F is the mean over examples.
5. `final_score` (main.py): F x (mean retain accuracy of the unlearned / of the retrained models) x (the same for
   test accuracy).

Because each per-threshold epsilon is a function of two counts (how many of each population the rule puts on the
wrong side), it is read from a table of the (N + 1)^2 values, computed once in float32 as the reference computes
each one; the counts come from `searchsorted` on each example's sorted confidences. Two departures, both where the
reference cannot run: the published metric.py stops at `assert thr_eps` on a NumPy array (ambiguous truth value
whenever more than one threshold survives), which is read as its intent ("some threshold survived"); and an example
where no threshold survives (both populations one and the same constant) gets epsilon 0 (the reference's assertion
would fail). docs/distributional.md has the line-by-line correspondence and `reference_scores.py` a per-example
loop that follows metric.py step by step, which the tests compare with this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

LEFT_THRESHOLDS_PER_RIGHT = 400  # metric.py: ceil(2 * buffer * NUM_THRESHOLDS_PER_UNIT) at its constants


@dataclass
class ForgetQualityConfig:
    """The competition's constants (metric.py), as config values at their defaults."""

    delta: float = 1e-5
    epsilon_cap: float = 50.0
    thresholds_per_unit: int = 100
    buffer: float = 2.0  # the double-threshold rule's margin around the peakier population
    peaky_ratio: float = 0.01  # smaller spread / larger spread below this: epsilon is the cap
    bucket_width: float = 0.5


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(..., n, C) logits and (n,) labels -> (..., n) float64 log p(y) - log(1 - p(y)), as metric.py computes it."""
    shifted = logits.float() - logits.float().amax(-1, keepdim=True)
    probs = shifted.exp().double()
    probs = probs / probs.sum(-1, keepdim=True)
    index = labels.to(logits.device).expand(probs.shape[:-1]).unsqueeze(-1)
    right = probs.gather(-1, index).squeeze(-1)
    wrong = probs.scatter(-1, index, 0.0).sum(-1)
    return torch.log(right + 1e-45) - torch.log(wrong + 1e-45)


def numpy_median(x: torch.Tensor) -> torch.Tensor:
    """np.median over dim 0: the middle value, or the mean of the two middle values ((a + b) / 2, as NumPy does)."""
    ordered = x.sort(0).values
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def epsilon_table(n: int, cfg: ForgetQualityConfig, device: torch.device) -> torch.Tensor:
    """(n + 1, n + 1) float32: epsilon of a threshold that misclassifies `i` of the positive population and `j` of the
    negative one (FNR = i / n, FPR = j / n), as metric.py computes it per threshold: inf for i = j = 0, NaN (the
    threshold is discarded) where one is 0, else the larger log-ratio floored at 0."""
    rates = torch.arange(n + 1, device=device, dtype=torch.float32) / n
    fnr, fpr = rates[:, None], rates[None, :]
    keep = torch.tensor(1 - cfg.delta, dtype=torch.float32, device=device)
    with torch.no_grad():
        one = torch.log(keep - fpr) - torch.log(fnr)
        two = torch.log(keep - fnr) - torch.log(fpr)
        table = torch.fmax(one, two).clamp(min=0)  # NaN stays NaN, as under np.nanmax then np.clip
    table = torch.where((fnr * fpr) == 0, torch.full_like(table, math.nan), table)
    table[0, 0] = math.inf
    return table


def numpy_linspace(start: torch.Tensor, stop: torch.Tensor, num: int) -> torch.Tensor:
    """np.linspace(start, stop, num) for each (start, stop) pair, in float64, value for value: k * step + start, the
    last point `stop` itself. Shapes (...,) -> (..., num)."""
    step = (stop - start) / (num - 1)
    points = torch.arange(num, dtype=torch.float64, device=start.device) * step.unsqueeze(-1) + start.unsqueeze(-1)
    points[..., -1] = stop
    return points


@dataclass
class DoubleRule:
    """The double-threshold family (metric.py `_get_double_threshold_rates`) laid out for E examples: R right
    thresholds each (NumPy's linspace from the peakier population's max - 2 + its spread to its max + 2), each with
    400 left thresholds from right - spread - 2 to right - spread + 2; "peakier" predicted inside [left, right]."""

    n: int  # models per population
    rights: torch.Tensor  # (E, R)
    real: torch.Tensor  # (E, R): a right threshold, not padding
    centre: torch.Tensor  # (E, R): right - spread, the middle of its left thresholds
    buffer: float
    merged: torch.Tensor  # (E, 2N): both populations' confidences, sorted
    below_peaky: torch.Tensor  # (E, 2N + 1): how many of the peakier population precede each merged position
    below_other: torch.Tensor
    upto_peaky: torch.Tensor  # (E, R): how many of the peakier population are <= each right threshold
    upto_other: torch.Tensor

    @classmethod
    def of(cls, first: torch.Tensor, second: torch.Tensor, cfg: ForgetQualityConfig) -> DoubleRule:
        """`first` (the positive population) and `second`, (E, N) each, sorted."""
        n = first.shape[1]
        spread_1, spread_2 = first[:, -1] - first[:, 0], second[:, -1] - second[:, 0]
        swap = spread_1 >= spread_2  # the peakier population becomes this rule's "positive" one
        peaky, other = torch.where(swap[:, None], second, first), torch.where(swap[:, None], first, second)
        width = torch.where(spread_1 > spread_2, spread_2, spread_1)
        low, high = peaky[:, 0] + width - cfg.buffer, peaky[:, -1] + cfg.buffer
        counts = torch.ceil((high - low) * cfg.thresholds_per_unit).long()
        step = (high - low) / (counts - 1)
        places = torch.arange(int(counts.max()), device=first.device)
        rights = (places[None, :].double() * step[:, None] + low[:, None]).scatter(
            1, (counts - 1)[:, None], high[:, None]
        )
        merged, order = torch.cat([peaky, other], 1).sort(1)
        zero = torch.zeros(len(merged), 1, dtype=torch.long, device=merged.device)
        is_peaky = (order < n).long()
        return cls(
            n,
            rights,
            places[None, :] < counts[:, None],
            rights - width[:, None],
            cfg.buffer,
            merged,
            torch.cat([zero, is_peaky.cumsum(1)], 1),
            torch.cat([zero, (1 - is_peaky).cumsum(1)], 1),
            torch.searchsorted(peaky, rights, right=True),
            torch.searchsorted(other, rights, right=True),
        )

    def wrong(self, right: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For (E, K) right-threshold indices and left-threshold indices k: how many of the peakier population lie
        outside [left, right] and how many of the other inside. Left threshold k of a right is np.linspace's
        k * step + start, its last one the stop itself."""
        centre = self.centre.gather(1, right)
        start, stop = centre - self.buffer, centre + self.buffer
        left = k.double() * ((stop - start) / (LEFT_THRESHOLDS_PER_RIGHT - 1)) + start
        left = torch.where(k == LEFT_THRESHOLDS_PER_RIGHT - 1, stop, left)
        at = torch.searchsorted(self.merged, left, right=False)
        inside = lambda upto, below: (upto.gather(1, right) - below.gather(1, at)).clamp(min=0)
        return self.n - inside(self.upto_peaky, self.below_peaky), inside(self.upto_other, self.below_other)


SEGMENT = 40  # left thresholds per segment: a segment is scanned only if its bound beats what is already found


def suffix_max(table: torch.Tensor) -> torch.Tensor:
    """bound[i, j] = the largest table[i', j'] with i' >= i and j' >= j: what any threshold with at least i and j
    wrong can reach."""
    return table.flip(0).cummax(0).values.flip(0).flip(1).cummax(1).values.flip(1)


def _double_rule_max(rule: DoubleRule, table: torch.Tensor, bound: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """The largest epsilon of the double-threshold family per example (-inf: none survives), exactly, without
    scanning every pair: first the ends of each segment of 40 left thresholds (real thresholds, so a floor on the
    answer), then only the segments whose bound (the suffix maximum at their fewest wrong of each population)
    beats that floor. `table` (N + 1, N + 1): epsilon with NaN as -inf."""
    e, r = rule.rights.shape
    starts = torch.arange(0, LEFT_THRESHOLDS_PER_RIGHT, SEGMENT, device=floor.device)
    ends, segments = starts + SEGMENT - 1, len(starts)
    right = torch.arange(r, device=floor.device).repeat_interleave(2 * segments).expand(e, -1)
    peaky, other = rule.wrong(right, torch.cat([starts, ends]).repeat(r).expand(e, -1))
    real = rule.real.repeat_interleave(2 * segments, 1)
    floor = torch.maximum(floor, torch.where(real, table[peaky, other], -math.inf).amax(1))
    peaky, other = peaky.view(e, r, 2, segments), other.view(e, r, 2, segments)
    fewest = bound[
        peaky[:, :, 0], other[:, :, 1]
    ]  # the peakier's fewest wrong at a segment's start, other's at its end
    live = ((fewest > floor[:, None, None]) & rule.real[:, :, None]).flatten(1)  # (E, R * segments)
    count = int(live.sum(1).max())
    if count == 0:
        return floor
    chosen = (
        live.long().sort(dim=1, descending=True, stable=True).indices[:, :count]
    )  # each example's live segments first
    valid = (torch.arange(count, device=floor.device)[None, :] < live.sum(1, keepdim=True)).repeat_interleave(
        SEGMENT, 1
    )
    k = (starts[chosen % segments].unsqueeze(-1) + torch.arange(SEGMENT, device=floor.device)).flatten(1)
    peaky, other = rule.wrong((chosen // segments).repeat_interleave(SEGMENT, 1), k)
    return torch.maximum(floor, torch.where(valid, table[peaky, other], -math.inf).amax(1))


def single_thresholds(positive: torch.Tensor, negative: torch.Tensor, cfg: ForgetQualityConfig) -> list[torch.Tensor]:
    """Per example, the single-threshold family's thresholds as metric.py makes them: torch.linspace over the joint
    range (float32, built on the CPU), `thresholds_per_unit` per unit."""
    low = torch.minimum(positive.amin(1), negative.amin(1)).cpu()
    high = torch.maximum(positive.amax(1), negative.amax(1)).cpu()
    counts = torch.ceil((high - low) * cfg.thresholds_per_unit).long().tolist()
    return [torch.linspace(lo, hi, c) for lo, hi, c in zip(low, high, counts)]


def _wrong_counts_single(positive: torch.Tensor, negative: torch.Tensor, cfg: ForgetQualityConfig):
    """The single-threshold family (metric.py `_get_single_threshold_rates`): positive predicted at or above a
    threshold. Returns (positives below, negatives at or above) per threshold, (E, K), and the mask of real ones."""
    n = positive.shape[1]
    per_example = single_thresholds(positive, negative, cfg)
    k_max = max(1, max(len(t) for t in per_example))
    grid = torch.zeros(len(per_example), k_max, dtype=torch.float64)
    real = torch.zeros(len(per_example), k_max, dtype=torch.bool)
    for i, thresholds in enumerate(per_example):
        grid[i, : len(thresholds)], real[i, : len(thresholds)] = thresholds.double(), True
    grid, real = grid.to(positive.device), real.to(positive.device)
    below_pos = torch.searchsorted(positive.sort(1).values, grid, right=False)
    above_neg = n - torch.searchsorted(negative.sort(1).values, grid, right=False)
    return below_pos, above_neg, real


def _single_rule_max(positive: torch.Tensor, negative: torch.Tensor, table: torch.Tensor, cfg) -> torch.Tensor:
    """The largest epsilon of the single-threshold family per example (-inf where none survives)."""
    below_pos, above_neg, real = _wrong_counts_single(positive, negative, cfg)
    return torch.where(real, table[below_pos, above_neg], -math.inf).amax(1)


def epsilons(
    unlearned: torch.Tensor, retrained: torch.Tensor, cfg: Optional[ForgetQualityConfig] = None, chunk: int = 16
) -> torch.Tensor:
    """(N, n) confidences of each population -> (n,) float64 epsilon per example, in [0, cap]."""
    cfg = cfg or ForgetQualityConfig()
    if unlearned.shape != retrained.shape or unlearned.shape[0] < 2:
        raise ValueError(f"two populations of the same shape, N >= 2, are needed: {unlearned.shape}, {retrained.shape}")
    unlearned, retrained = unlearned.double(), retrained.to(unlearned.device).double()
    retrain_positive = numpy_median(retrained) > numpy_median(unlearned)
    positive = torch.where(retrain_positive, retrained, unlearned).T.contiguous()  # (n, N)
    negative = torch.where(retrain_positive, unlearned, retrained).T.contiguous()
    table = epsilon_table(unlearned.shape[0], cfg, unlearned.device).nan_to_num(nan=-math.inf, posinf=math.inf)
    bound = suffix_max(table)
    out = []  # `chunk` examples at a time: each has about 160,000 threshold pairs
    for i in range(0, positive.shape[0], chunk):
        pos, neg = positive[i : i + chunk], negative[i : i + chunk]
        single = _single_rule_max(pos, neg, table, cfg)
        rule = DoubleRule.of(pos.sort(1).values, neg.sort(1).values, cfg)
        out.append(_double_rule_max(rule, table, bound, single))
    eps = torch.cat(out).double()
    eps = torch.where(eps == -math.inf, torch.zeros_like(eps), eps)  # no threshold survived (see the docstring)
    spread_pos = positive.amax(1) - positive.amin(1)
    spread_neg = negative.amax(1) - negative.amin(1)
    ratio = torch.minimum(spread_pos, spread_neg) / torch.maximum(spread_pos, spread_neg)
    eps = torch.where(ratio < cfg.peaky_ratio, torch.full_like(eps, cfg.epsilon_cap), eps)
    return eps.clamp(0, cfg.epsilon_cap)


def bucket_count(num_models: int, cfg: ForgetQualityConfig) -> int:
    """How many buckets score points at N models: those ending at or below ceil(ln(N - 1))."""
    top = math.ceil(math.log(num_models - 1)) if num_models > 1 else 0
    return int(top / cfg.bucket_width + 1e-9)


def bucket_points(eps: torch.Tensor, num_models: int, cfg: Optional[ForgetQualityConfig] = None) -> torch.Tensor:
    """Each example's points: 1 in the first bucket, half as many in each next one, 0 beyond the last."""
    cfg = cfg or ForgetQualityConfig()
    bucket = torch.floor(eps / cfg.bucket_width)
    points = torch.pow(0.5, bucket)
    return torch.where(bucket < bucket_count(num_models, cfg), points, torch.zeros_like(points))


def forget_quality(
    unlearned: torch.Tensor, retrained: torch.Tensor, cfg: Optional[ForgetQualityConfig] = None
) -> tuple[float, torch.Tensor]:
    """(F, per-example epsilon) of two (N, n) populations of confidences."""
    eps = epsilons(unlearned, retrained, cfg)
    return bucket_points(eps, unlearned.shape[0], cfg).mean().item(), eps


def final_score(quality: float, accuracies: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict:
    """main.py's final score: F x (RA_unlearned / RA_retrained) x (TA_unlearned / TA_retrained), each accuracy the
    mean over a population's models."""
    retain = accuracies["retain"].double().mean().item() / reference["retain"].double().mean().item()
    test = accuracies["test"].double().mean().item() / reference["test"].double().mean().item()
    return {"score": quality * retain * test, "retain_ratio": retain, "test_ratio": test}
