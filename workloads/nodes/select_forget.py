"""`select_forget`: a worst-case forget set (workloads/selection.py) selected from the original (input `original`).
Its scores (tensor `scores`: the selection weights over the training set) choose the forget set of every node of
its seed that reads it, as memorization scores do for `high_mem`; the search starts from the `random` criterion's
forget set of the same `forget` section."""

import torch

from workloads.forget import ForgetConfig, candidates_of, select_forget_set
from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.common import load_model
from workloads.nodes.configs import SelectForgetNodeConfig
from workloads.selection import select_worst_case, top_selection
from workloads.train import generator_for, steps_for


def selection_work(config: SelectForgetNodeConfig, size):
    cfg = config.selection
    steps = cfg.select_epochs * steps_for(cfg.lower_epochs, size.train, cfg.batch_size)
    return Work(steps, cfg.batch_size, cfg.select_epochs * size.train)


@register_kind("select_forget", SelectForgetNodeConfig, reads=("original",), work=selection_work)
def run_select_forget(config: SelectForgetNodeConfig, inputs, ctx):
    d, budget, cfg = ctx.data, config.budget, config.selection
    labels = d.y_train.cpu()
    random = ForgetConfig(target_class=budget.target_class, fraction=budget.fraction, seed=budget.seed)
    start = select_forget_set(labels, random, None, d.num_classes).forget
    candidates = candidates_of(labels, budget.target_class)
    state = inputs["original"].state
    found = select_worst_case(
        lambda: load_model(config, d, state, ctx.device),
        d.x_train,
        d.y_train,
        candidates,
        start,
        cfg,
        generator_for(budget.seed),
        d.augment if cfg.augment else None,
    )
    chosen = top_selection(found.scores[candidates], len(start)).bool()
    kept = len(set(candidates[chosen].tolist()) & set(start.tolist())) / len(start)
    last = found.epochs[-1]
    return NodeOutput(
        result={
            "budget": len(start),
            "candidates": len(candidates),
            "start_overlap": kept,  # share of the selected set that was in the random start
            "epochs": found.epochs,
        },
        metrics={
            "start_overlap": kept,
            "selected_loss": last["selected_loss"],
            "unselected_loss": last["unselected_loss"],
        },
        curves={"upper_objective": [[e["epoch"], e["upper_objective"]] for e in found.epochs]},
        tensors={"scores": found.scores, "start": found.start.to(torch.float32)},
    )
