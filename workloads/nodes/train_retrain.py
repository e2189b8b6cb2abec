"""`train_retrain`: the gold standard, the original's recipe and initial weights on the retain set only. Every
sweep builds it; the oracle method (`retrain`) is this node, and the relearning attack on it is the control.
Version 2: the original's step count and cosine length (epochs of the full training set, as the reference counts
them); version 1 counted epochs of the retain set, a few steps fewer. `train.retrain` (workloads/train.py,
RetrainConfig) departs from the original's recipe as the REM reference's retraining does: its own lr, a fresh init,
training in drop mode; unset, it is the original's recipe and initial weights, as before (same keys)."""

from workloads.nodes.base import register_kind
from workloads.nodes.common import train_model, training_key_view, training_work
from workloads.nodes.configs import TrainNodeConfig


@register_kind(
    "train_retrain",
    TrainNodeConfig,
    version=2,
    reads=("forget_scores",),
    reads_forget_set=True,
    work=training_work,
    key_view=training_key_view,
)
def run_train_retrain(config: TrainNodeConfig, inputs, ctx):
    return train_model(config, ctx, ctx.forget_set.retain, retrain=True)
