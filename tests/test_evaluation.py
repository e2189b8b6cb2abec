"""Membership inference, LMC options and the per-sweep correlation, on cases whose answer is known."""

import numpy as np
import pytest
import torch
from torch import nn

from orchestrator.report import correlations
from workloads.mia import loss_attack
from workloads.weightspace import interpolation_points, linear_mode_connectivity, recalibrate_batchnorm


def test_membership_attack_separates_memorised_losses_and_not_identical_ones():
    rng = np.random.default_rng(0)
    separable = loss_attack(rng.uniform(0.001, 0.01, 200), rng.uniform(1.0, 3.0, 300))
    assert separable["acc"] == 1.0 and separable["auc"] == 1.0 and separable["examples_per_class"] == 200
    same = loss_attack(rng.exponential(1.0, 2000), rng.exponential(1.0, 2000))
    assert abs(same["acc"] - 0.5) < 0.05 and abs(same["auc"] - 0.5) < 0.05
    assert np.isnan(loss_attack(np.ones(3), np.ones(3))["auc"])  # too few to cross-validate


def test_interpolation_stride():
    assert interpolation_points(0.05) == [i / 20 for i in range(21)]
    assert interpolation_points(0.5) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="stride"):
        interpolation_points(0.3)


def test_batchnorm_recalibration_sets_the_statistics_of_the_given_inputs():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(1000, 3) * 2 + 5
    recalibrate_batchnorm(model, x, batch_size=100)
    hidden = model[0](x)
    assert torch.allclose(model[1].running_mean, hidden.mean(0), atol=1e-4)
    assert not model.training


def test_lmc_with_recalibration_matches_its_endpoints_recalibrated():
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    a, b, probe = make(), make(), make()
    x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    out = linear_mode_connectivity(
        probe, a.state_dict(), b.state_dict(), {"test": (x, y)}, 2, stride=0.5, recalibrate_on=x
    )
    recalibrate_batchnorm(b, x)
    assert out["test_loss"][-1] == pytest.approx(nn.functional.cross_entropy(b(x), y).item(), abs=1e-6)


def result(method, l2, barrier, unlearned, relearned, seed=43):
    return {
        "method": method,
        "hparams": {},
        "seed": seed,
        "l2_to_original": l2,
        "lmc": {"loss_barrier": barrier},
        "unlearned": {"heldout_forget_acc": unlearned},
        "relearned": {"0": {"heldout_forget_acc": relearned}},
    }


def test_spearman_between_distance_and_recovery():
    # Recovery falls as distance grows: a perfect negative rank correlation.
    results = [result("a", 1.0, 0.1, 0.3, 0.9), result("b", 2.0, 0.3, 0.3, 0.7), result("c", 3.0, 0.2, 0.3, 0.5)]
    out = correlations(results)
    assert out["l2_to_original_vs_recovery_k0"]["spearman"] == pytest.approx(-1.0)
    assert out["l2_to_original_vs_recovery_k0"]["n"] == 3
    assert out["loss_barrier_vs_recovery_k0"]["spearman"] == pytest.approx(-0.5)
    assert correlations(results[:2])["l2_to_original_vs_recovery_k0"]["spearman"] is None  # too few methods


def test_correlations_rank_settings_by_their_means_over_seeds():
    """Seeds of one setting count once, by their means: a setting run on three seeds does not outweigh the others."""
    seeds = [result("a", 1.0, 0.1, 0.3, 0.9, seed=s) for s in (1, 2, 3)]
    results = seeds + [result("b", 2.0, 0.3, 0.3, 0.7), result("c", 3.0, 0.2, 0.3, 0.5)]
    out = correlations(results)["l2_to_original_vs_recovery_k0"]
    assert out["n"] == 3 and out["spearman"] == pytest.approx(-1.0)
    # a's mean recovery falls below b's and c's once one of its seeds recovers little: the rank flips
    seeds[0]["relearned"]["0"]["heldout_forget_acc"] = -1.2
    assert correlations(results)["l2_to_original_vs_recovery_k0"]["spearman"] == pytest.approx(0.5)
