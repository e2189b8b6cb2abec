"""`interpolate`: linear mode connectivity between two models, (1 - t) a + t b at every t of the stride (floating
buffers too, batch-norm recalibrated only if configured), evaluated on retain, forget and test, with the loss
and error barriers on test (workloads/weightspace.py). The error barrier is derived from the stored test accuracies,
so results stored before it was reported gain it without recomputing (the summary derives it the same way)."""

from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.common import node_model, split_tensors
from workloads.nodes.configs import InterpolateNodeConfig
from workloads.weightspace import interpolation_points, linear_mode_connectivity


def interpolation_work(config: InterpolateNodeConfig, size):
    points = len(interpolation_points(config.lmc.stride))
    return Work(forward_examples=points * (size.train + size.test))


@register_kind(
    "interpolate",
    InterpolateNodeConfig,
    reads=("a", "b", "forget_scores"),
    reads_forget_set=True,
    work=interpolation_work,
)
def run_interpolate(config: InterpolateNodeConfig, inputs, ctx):
    model = node_model(config, ctx.data, ctx.device)
    splits = {k: v for k, v in split_tensors(ctx).items() if k != "heldout_forget"}
    lmc = config.lmc
    recalibrate = splits["retain"][0] if lmc.recompute_bn else None
    out = linear_mode_connectivity(
        model,
        inputs["a"].state,
        inputs["b"].state,
        splits,
        ctx.data.num_classes,
        lmc.stride,
        recalibrate_on=recalibrate,
    )
    curves = {
        f"lmc_{name}": [[i, v] for i, v in enumerate(values)]
        for name, values in out.items()
        if name not in ("t", "loss_barrier", "error_barrier")
    }
    return NodeOutput(
        result=out, metrics={"loss_barrier": out["loss_barrier"], "error_barrier": out["error_barrier"]}, curves=curves
    )
