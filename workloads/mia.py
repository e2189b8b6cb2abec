"""Loss-based membership inference: can an attacker tell forget examples (trained on, then unlearned) from test
examples (never trained on) by the model's loss on them? A logistic-regression attack on the per-example loss,
with balanced classes and stratified cross-validation; reports held-out accuracy and AUC (0.5: indistinguishable,
which is what a retrained model scores when the forget set generalises like the test set)."""

from __future__ import annotations

import numpy as np


def loss_attack(member_losses: np.ndarray, nonmember_losses: np.ndarray, seed: int = 0, folds: int = 5) -> dict:
    """Cross-validated attack on balanced samples; NaNs when there are too few examples to cross-validate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    n = min(len(member_losses), len(nonmember_losses))
    if n < folds:
        return {"acc": float("nan"), "auc": float("nan"), "examples_per_class": n}
    members = rng.choice(member_losses, n, replace=False)
    nonmembers = rng.choice(nonmember_losses, n, replace=False)
    # log(loss) spreads the tiny losses of memorised examples; the attack is monotone in it either way.
    features = np.log(np.concatenate([members, nonmembers]) + 1e-12).reshape(-1, 1)
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(LogisticRegression(), features, labels, cv=splits, method="predict_proba")[:, 1]
    return {
        "acc": float(((scores > 0.5) == labels).mean()),
        "auc": float(roc_auc_score(labels, scores)),
        "examples_per_class": n,
    }
