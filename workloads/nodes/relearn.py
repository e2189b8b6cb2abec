"""`relearn`: the relearning attack (workloads/relearn.py) on one model with k forget examples given away. The
attacker's set is built from the data, the forget set, k and the target class alone, so every model (unlearned,
retrained control, original) is attacked with the same examples. Version 2: every relearn set; results name their
set and k. Version 3: test accuracy measured with every held-out evaluation and reported, like held-out forget
accuracy, as the mean of the last `report_last` (the final values beside them), as the reference's figures do."""

import dataclasses

from workloads.config import keyed_section
from workloads.evaluation import EvaluationConfig
from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.common import load_model
from workloads.nodes.configs import RelearnNodeConfig
from workloads.relearn import RelearnConfig, relearn
from workloads.relearn_sets import uses_corrupted_test
from workloads.speed import prepare_images
from workloads.train import steps_for


def relearn_work(config: RelearnNodeConfig, size):
    cfg = config.relearn
    steps = steps_for(cfg.epochs, size.train, cfg.batch_size)
    heldout = round(getattr(config.forget, "fraction", 0.1) * size.train)  # an upper bound: all classes
    return Work(steps, cfg.batch_size, (steps // max(1, cfg.eval_every)) * (heldout + size.test) + size.train)


def relearn_key_view(config):
    return keyed_section(keyed_section(config, "relearn", RelearnConfig), "evaluation", EvaluationConfig)


@register_kind(
    "relearn",
    RelearnNodeConfig,
    version=3,
    reads=("model", "forget_scores"),
    reads_forget_set=True,
    work=relearn_work,
    key_view=relearn_key_view,
)
def run_relearn(config: RelearnNodeConfig, inputs, ctx):
    d = ctx.data
    if d.x_corrupted_test is not None and uses_corrupted_test(config.relearn.relearn_set):  # the others' memory format
        d = dataclasses.replace(d, x_corrupted_test=prepare_images(d.x_corrupted_test, config.speed))
    model = load_model(config, d, inputs["model"].state, ctx.device)
    target_class = getattr(config.forget, "target_class", None)  # a task space's forget set spans every class
    out = relearn(model, d, ctx.forget_set, config.k, config.relearn, config.seed, target_class, config.evaluation)
    return NodeOutput(
        result=out,
        metrics={"heldout_forget_acc": out["heldout_forget_acc"], "test_acc": out["test_acc"]},
        curves={"heldout_forget_acc": out["curve"], "test_acc": out["test_curve"]},
    )
