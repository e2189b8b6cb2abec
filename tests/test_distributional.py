"""The distributional scores on constructed populations: the competition's forget quality (identical populations
score 1, disjoint ones 0, a case worked by hand, the order of models does not matter, the vectorised score equals a
per-example reading of metric.py), its confidence and final score, and KLoM (zero for identical samples, growing with
a shift, equal to the bench's per-example loop)."""

import math

import numpy as np
import pytest
import torch

from workloads.distributional import SCORES, ScoreConfig, prefixes, score_populations
from workloads.forget_quality import (
    ForgetQualityConfig,
    bucket_count,
    bucket_points,
    epsilons,
    final_score,
    forget_quality,
    logit_scaled_confidence,
    numpy_linspace,
    numpy_median,
)
from workloads.klom import KLoMConfig, binned_kl, margins, percentiles
from workloads.reference_scores import reference_binned_kl, reference_epsilons, reference_forget_quality

CFG = ForgetQualityConfig()


def populations(n_models: int, n_examples: int, shift: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = 2 * torch.randn(n_models, n_examples, generator=g, dtype=torch.float64)
    b = 2 * torch.randn(n_models, n_examples, generator=g, dtype=torch.float64) + shift
    return a, b


def test_identical_populations_score_one_with_every_epsilon_in_the_first_bucket():
    a, _ = populations(32, 20, 0.0)
    quality, eps = forget_quality(a, a.clone())
    assert quality == 1.0 and eps.max().item() < CFG.bucket_width


def test_disjoint_populations_score_zero():
    a, b = populations(32, 20, 50.0)
    quality, eps = forget_quality(a, b)
    assert quality == 0.0 and torch.all(eps == CFG.epsilon_cap)  # perfect separation: infinity, capped


def test_a_case_worked_by_hand():
    # Three models each way. Retrained confidences 5, 15, 25 (median 15) are the positive population, unlearned
    # 0, 10, 20 the negative. The single threshold between 10 and 15 misclassifies one of each (FNR = FPR = 1/3):
    # epsilon = log(1 - 1e-5 - 1/3) - log(1/3) = log(2 - 3e-5). Every other threshold discards itself (a zero rate)
    # or scores below 0; the double rule always puts 5 and 15 inside and 25 outside (FPR = 2/3), at most 0.
    unlearned = torch.tensor([[0.0], [10.0], [20.0]], dtype=torch.float64)
    retrained = unlearned + 5
    quality, eps = forget_quality(unlearned, retrained)
    assert eps.item() == pytest.approx(math.log(2 - 3e-5), abs=1e-6)
    # ceil(ln 2) = 1: two buckets, [0, 0.5) worth 1 and [0.5, 1) worth 0.5; 0.693 is in the second
    assert bucket_count(3, CFG) == 2 and quality == 0.5


def test_the_score_does_not_depend_on_the_order_of_models():
    a, b = populations(24, 30, 1.0)
    order_a, order_b = torch.randperm(24, generator=torch.Generator().manual_seed(1)), torch.randperm(24)
    assert torch.equal(epsilons(a, b), epsilons(a[order_a], b[order_b]))
    kl = binned_kl(a, b, KLoMConfig())
    assert torch.equal(kl, binned_kl(a[order_a], b[order_b], KLoMConfig()))


@pytest.mark.parametrize("n_models", [3, 16, 33])
def test_the_vectorised_epsilons_are_metric_pys_example_by_example(n_models):
    a, b = populations(n_models, 24, 0.0, seed=n_models)
    b = b + torch.linspace(0, 6, 24, dtype=torch.float64)  # from overlapping to separated
    a[:, 1] = b[:, 1]  # identical
    a[:, 2] = b[:, 2] * 1e-3  # one population 1000x peakier: the cap
    a[:, 3], b[:, 3] = a[:, 3].round(), b[:, 3].round()  # ties, on thresholds too
    a[:, 4], b[:, 4] = 3.0, 3.0  # one constant: no threshold survives (the reference's assertion; epsilon 0 here)
    b[:, 5] = a[:, 5].round() + 0.5
    ours = epsilons(a, b).numpy()
    with np.errstate(all="ignore"):
        reference = reference_epsilons(a.numpy(), b.numpy(), CFG)
    np.testing.assert_allclose(ours, reference, rtol=1e-6)  # float32 logs: NumPy's and torch's may differ by an ulp
    assert forget_quality(a, b)[0] == pytest.approx(reference_forget_quality(a.numpy(), b.numpy(), CFG))


def test_independent_draws_of_one_law_score_far_below_one_as_the_reference_computes_it():
    # The null is low: epsilon is a maximum over thousands of thresholds, and the tails decide it (a threshold
    # past the other population's extreme member with k of this one beyond it scores ln k), at every N.
    for n_models in (16, 64):
        a, b = populations(n_models, 40, 0.0, seed=n_models)
        quality, eps = forget_quality(a, b)
        assert quality < 0.5 and eps.median() > 0.5


def test_confidence_is_the_logit_scaled_true_class_probability_and_saturates_as_the_reference():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 300.0, 0.0]])
    labels = torch.tensor([0, 0])
    conf = logit_scaled_confidence(logits, labels)
    p = torch.softmax(logits[0].double(), 0)
    assert conf[0].item() == pytest.approx(math.log(p[0] / (1 - p[0])), rel=1e-6)
    assert conf[0].item() == pytest.approx(margins(logits, labels)[0].item(), rel=1e-5)  # the same quantity
    assert conf[1].item() == pytest.approx(math.log(1e-45) - math.log(1.0 + 1e-45))  # float32 exp underflows
    assert conf.dtype == torch.float64 and logit_scaled_confidence(logits[None].expand(4, -1, -1), labels).shape == (
        4,
        2,
    )


def test_buckets_halve_and_stop_at_ceil_log_n_minus_one():
    eps = torch.tensor([0.0, 0.49, 0.5, 1.2, 3.99, 4.0, 50.0], dtype=torch.float64)
    assert bucket_count(32, CFG) == 8  # ceil(ln 31) = 4
    assert bucket_points(eps, 32).tolist() == [1.0, 1.0, 0.5, 0.25, 0.5**7, 0.0, 0.0]
    assert bucket_count(512, CFG) == 14


def test_the_final_score_weighs_forget_quality_by_the_accuracy_ratios():
    ours = {"retain": torch.tensor([0.9, 0.7]), "test": torch.tensor([0.6, 0.6])}
    reference = {"retain": torch.tensor([1.0, 0.6]), "test": torch.tensor([0.8, 0.8])}
    out = final_score(0.5, ours, reference)
    assert out["retain_ratio"] == pytest.approx(1.0) and out["test_ratio"] == pytest.approx(0.75)
    assert out["score"] == pytest.approx(0.375)


def test_numpy_helpers_are_numpys_value_for_value():
    g = torch.Generator().manual_seed(3)
    starts, stops = torch.randn(50, generator=g, dtype=torch.float64), torch.rand(50, generator=g).double() * 5
    ours = numpy_linspace(starts, starts + stops, 400).numpy()
    assert np.array_equal(ours, np.stack([np.linspace(s, s + w, 400) for s, w in zip(starts.numpy(), stops.numpy())]))
    x = torch.randn(6, 9, generator=g, dtype=torch.float64)
    assert np.array_equal(numpy_median(x).numpy(), np.median(x.numpy(), axis=0))


def test_klom_is_zero_for_identical_samples_and_grows_with_a_shift():
    base = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.01, 0.99, 64)).unsqueeze(1)
    cfg = KLoMConfig()
    assert binned_kl(base, base.clone(), cfg).item() == 0.0
    values = [binned_kl(base + shift, base, cfg).item() for shift in (0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] > 0


@pytest.mark.parametrize("renormalize", [False, True])
def test_klom_is_the_benchs_binned_kl_example_by_example(renormalize):
    g = torch.Generator().manual_seed(0)
    p, q = 3 * torch.randn(32, 30, generator=g), 3 * torch.randn(32, 30, generator=g) + 1
    p[:, 0], p[:, 1], q[:, 1], p[:, 2] = q[:, 0], 5.0, 5.0, 200.0  # identical, one value, clipped
    cfg = KLoMConfig(renormalize=renormalize)
    reference = [
        reference_binned_kl(p[:, i].double().numpy(), q[:, i].double().numpy(), renormalize=renormalize)
        for i in range(30)
    ]
    np.testing.assert_allclose(binned_kl(p, q, cfg).numpy(), reference, atol=1e-12)


def test_klom_options_margin_and_top_edge():
    logits = torch.tensor([[3.0, 1.0, 1.0]])
    assert margins(logits, torch.tensor([0]), "max_other").item() == pytest.approx(2.0)
    assert margins(logits, torch.tensor([0])).item() == pytest.approx(3.0 - math.log(2 * math.e))
    # p's larger sample is the top edge: the bench drops it (both samples then share the first bin), count_top_edge
    # keeps it in the last bin, where q has nothing.
    p, q = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [0.02]])
    assert binned_kl(p, q, KLoMConfig()).item() == pytest.approx(0.0)
    assert binned_kl(p, q, KLoMConfig(count_top_edge=True)).item() > 0
    assert percentiles(torch.arange(101.0), [95])["p95"] == pytest.approx(95.0)


@pytest.mark.parametrize("name", SCORES.names())
def test_each_distributional_score_reads_two_populations_outputs(name):
    g = torch.Generator().manual_seed(0)

    def outputs(shift):
        logits = {s: torch.randn(8, 12, 3, generator=g) + shift for s in ("forget", "retain", "test")}
        out = {f"logits_{s}": v for s, v in logits.items()}
        out |= {f"labels_{s}": torch.arange(12) % 3 for s in logits}
        out |= {f"acc_{s}": torch.full((8,), 0.5 + shift) for s in ("forget", "retain", "test", "heldout_forget")}
        return out | {"heldout": torch.arange(12) >= 4}

    numbers, tensors = SCORES.get(name)(outputs(0.0), outputs(0.1), ScoreConfig(), "heldout_forget")
    assert numbers and all(len(t) == 8 for t in tensors.values() if t.dim() == 1 and "forget" in str(t))
    if name == "forget_quality":
        assert 0 <= numbers["forget_quality"] <= 1 and len(numbers["epsilons"]) == 8  # the held-out rows
        assert list(numbers["forget_quality_by_n"]) == ["8"] and prefixes(40) == [8, 16, 32, 40]
    else:
        assert {"klom_forget_p95", "klom_retain_p95", "klom_test_p95"} <= set(numbers)
    assert set(numbers) <= set(score_populations(outputs(0.0), outputs(0.1), ScoreConfig(), "forget")[0])
