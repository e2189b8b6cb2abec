"""`train_original`: the model everything starts from, trained on the full training set by the sweep's `train`
recipe from the seed's initial weights. With canaries, their wrong labels are in the training set it sees (so the
forget set's identity enters its key); in a corrupted-data task it trains on the corrupted training set, with nothing
discovered yet (so the corruption enters its key, and no discovery rate does: one original serves every rate). The
retrained baseline's departures from the recipe (`train.retrain`) stay out of its key."""

from workloads.nodes.base import register_kind
from workloads.nodes.common import original_key_view, train_model, training_work
from workloads.nodes.configs import TrainNodeConfig


@register_kind(
    "train_original",
    TrainNodeConfig,
    reads=("forget_scores",),
    reads_forget_set=lambda config: config.forget is not None or config.corruption is not None,
    work=training_work,
    key_view=original_key_view,
)
def run_train_original(config: TrainNodeConfig, inputs, ctx):
    return train_model(config, ctx, None)
