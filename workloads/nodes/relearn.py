"""`relearn`: the relearning attack (workloads/relearn.py) on one model with k forget examples given away. The
attacker's set is built from the data, the forget set, k and the target class alone, so every model (unlearned,
retrained control, original) is attacked with the same examples. Version 2: every relearn set; results name their
set and k. Version 3: test accuracy measured with every held-out evaluation and reported, like held-out forget
accuracy, as the mean of the last `report_last` (the final values beside them), as the reference's figures do."""

import dataclasses

from workloads.config import keyed_section, typed
from workloads.evaluation import EvaluationConfig
from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.common import load_model, speed_of
from workloads.relearn import RelearnConfig, relearn
from workloads.relearn_sets import uses_corrupted_test
from workloads.speed import prepare_images
from workloads.train import steps_for


def relearn_work(config, size):
    cfg = typed(RelearnConfig, config["relearn"], "relearn")
    steps = steps_for(cfg.epochs, size.train, cfg.batch_size)
    heldout = round((config.get("forget") or {}).get("fraction", 0.1) * size.train)  # an upper bound: all classes
    return Work(steps, cfg.batch_size, (steps // max(1, cfg.eval_every)) * (heldout + size.test) + size.train)


def relearn_key_view(config):
    return keyed_section(keyed_section(config, "relearn", RelearnConfig), "evaluation", EvaluationConfig)


@register_kind(
    "relearn",
    version=3,
    reads=("model", "forget_scores"),
    reads_forget_set=True,
    work=relearn_work,
    key_view=relearn_key_view,
)
def run_relearn(config, inputs, ctx):
    cfg = typed(RelearnConfig, config["relearn"], "relearn")
    evaluation = typed(EvaluationConfig, config.get("evaluation", {}), "evaluation")
    d = ctx.data
    if d.x_corrupted_test is not None and uses_corrupted_test(cfg.relearn_set):  # same memory format as the rest
        d = dataclasses.replace(d, x_corrupted_test=prepare_images(d.x_corrupted_test, speed_of(config)))
    model = load_model(config, d, inputs["model"].state, ctx.device)
    target_class = (config.get("forget") or {}).get("target_class")
    out = relearn(model, d, ctx.forget_set, config["k"], cfg, config["seed"], target_class, evaluation)
    return NodeOutput(
        result=out,
        metrics={"heldout_forget_acc": out["heldout_forget_acc"], "test_acc": out["test_acc"]},
        curves={"heldout_forget_acc": out["curve"], "test_acc": out["test_curve"]},
    )
