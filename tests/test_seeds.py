"""Seeds as an axis of the report: every method setting and control as mean, sd and n over its seeds."""

import statistics

import pytest

from orchestrator.report.seeds import aggregate, setting_id


def row(method, seed, heldout, relearned, test, lr=0.1, l2=1.0):
    return {
        "method": method,
        "hparams": {"lr": lr},
        "start_from": None,
        "seed": seed,
        "run_id": "r",
        "unlearned": {"heldout_forget_acc": heldout, "test_acc": test, "run_id": "r"},
        "relearned": {"0": {"heldout_forget_acc": relearned, "test_acc": test}},
        "l2_to_original": l2,
        "lmc": {"loss_barrier": 0.5, "error_barrier": 0.1},
    }


def control(seed, test):
    metrics = {
        "heldout_forget_acc": 0.3,
        "test_acc": test,
        "run_id": "x",
        "relearned": {"0": {"heldout_forget_acc": 0.31}},
    }
    return {"seed": seed, "original": dict(metrics), "retrain": {**metrics, "l2_to_original": 2.0, "lmc": None}}


def test_each_setting_is_one_entry_with_mean_sd_and_n_over_its_seeds():
    results = [row("scrub", s, h, r, t) for s, h, r, t in ((1, 0.2, 0.6, 0.9), (2, 0.4, 0.5, 0.8), (3, 0.3, 0.7, 0.85))]
    results.append(row("scrub", 1, 0.5, 0.5, 0.9, lr=0.2))  # another setting of the same method
    out = aggregate(results, [control(1, 0.9), control(2, 0.8)])
    assert len(out["settings"]) == 2
    scrub = next(s for s in out["settings"] if s["hparams"] == {"lr": 0.1})
    assert scrub["seeds"] == [1, 2, 3]
    held = scrub["metrics"]["unlearned.heldout_forget_acc"]
    assert (
        held["mean"] == pytest.approx(0.3)
        and held["sd"] == pytest.approx(statistics.stdev([0.2, 0.4, 0.3]))
        and held["n"] == 3
    )
    recovery = scrub["metrics"]["recovery.k0"]
    assert recovery["mean"] == pytest.approx(((0.6 - 0.2) + (0.5 - 0.4) + (0.7 - 0.3)) / 3)
    assert scrub["metrics"]["lmc.error_barrier"]["mean"] == pytest.approx(0.1)
    single = next(s for s in out["settings"] if s["hparams"] == {"lr": 0.2})
    assert single["metrics"]["unlearned.heldout_forget_acc"] == {"mean": 0.5, "sd": None, "n": 1}
    assert out["retrain"]["metrics"]["retrain.test_acc"]["mean"] == pytest.approx(0.85)
    assert (
        out["retrain"]["metrics"]["l2_to_original"]["n"] == 2
        and "retrain.l2_to_original" not in out["retrain"]["metrics"]
    )
    assert out["original"]["metrics"]["relearned.k0.heldout_forget_acc"]["mean"] == pytest.approx(0.31)


def test_a_setting_is_its_method_hparams_and_start_not_its_seed():
    assert setting_id(row("scrub", 1, 0, 0, 0)) == setting_id(row("scrub", 2, 1, 1, 1))
    assert setting_id(row("scrub", 1, 0, 0, 0)) != setting_id(row("scrub", 1, 0, 0, 0, lr=0.2))
    chained = {**row("tar", 1, 0, 0, 0), "start_from": {"method": "scrub", "hparams": {}, "start_from": None}}
    assert setting_id(chained) != setting_id(row("tar", 1, 0, 0, 0))


def over(original_test, control_heldout, control_relearned, settings):
    """A summary with only what the verdicts read: controls and settings as over-seeds means."""
    metric = lambda value: {"mean": value, "sd": None, "n": 3}
    return {
        "over_seeds": {
            "original": {"seeds": [1, 2, 3], "metrics": {"original.test_acc": metric(original_test)}},
            "retrain": {
                "seeds": [1, 2, 3],
                "metrics": {
                    "retrain.heldout_forget_acc": metric(control_heldout),
                    "relearned.k0.heldout_forget_acc": metric(control_relearned),
                },
            },
            "settings": [
                {
                    "method": name,
                    "hparams": {},
                    "start_from": None,
                    "seeds": [1, 2, 3],
                    "metrics": {
                        "unlearned.test_acc": metric(test),
                        "unlearned.heldout_forget_acc": metric(held),
                        "recovery.k0": metric(recovery),
                    },
                }
                for name, test, held, recovery in settings
            ],
        }
    }


def test_verdicts_read_each_setting_by_the_studys_margins():
    from orchestrator.report.verdicts import verdicts

    out = verdicts(
        over(
            0.92,
            0.30,
            0.33,
            [
                ("dormant", 0.90, 0.38, 0.25),  # within 3 test points and 10 forget points, recovers 25
                ("deleted", 0.91, 0.35, 0.02),  # looks clean, stays deleted
                ("broken", 0.85, 0.35, 0.40),  # recovers, but 7 test points down
                ("kept", 0.92, 0.90, 0.01),  # forgets too little
                ("edge", 0.89, 0.40, 0.20),  # exactly on every margin: counts
            ],
        )
    )
    by = {s["method"]: s for s in out["settings"]}
    assert [by[m]["looks_clean"] for m in ("dormant", "deleted", "broken", "kept", "edge")] == [
        True,
        True,
        False,
        False,
        True,
    ]
    assert [by[m]["recovers"] for m in ("dormant", "deleted", "broken", "kept", "edge")] == [
        True,
        False,
        True,
        False,
        True,
    ]
    assert by["dormant"]["dormant"] and not by["broken"]["dormant"] and by["edge"]["dormant"]
    assert out["control_moved"] == pytest.approx(0.03) and out["control_still"]
    moving = verdicts(over(0.92, 0.30, 0.36, [("dormant", 0.90, 0.38, 0.25)]))
    assert not moving["control_still"] and not moving["settings"][0]["dormant"]  # a control that moves 6 points
