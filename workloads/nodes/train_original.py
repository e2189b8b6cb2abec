"""`train_original`: the model everything starts from, trained on the full training set by the sweep's `train`
recipe from the seed's initial weights. With canaries, their wrong labels are in the training set it sees (so the
forget set's identity enters its key)."""
from workloads.nodes.base import register_kind
from workloads.nodes.common import train_model, training_work


@register_kind("train_original", reads=("forget_scores",), reads_forget_set=lambda config: "forget" in config,
               work=training_work)
def run_train_original(config, inputs, ctx):
    return train_model(config, ctx, None)
