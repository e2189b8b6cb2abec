"""`distance`: the L2 norm of the difference of two models' weights and biases (batch-norm affine parameters
included, running statistics excluded), with a per-layer breakdown (workloads/weightspace.py)."""

import torch

from workloads.nodes.base import NodeOutput, register_kind
from workloads.nodes.common import node_model
from workloads.nodes.configs import DistanceNodeConfig
from workloads.weightspace import l2_distance


@register_kind("distance", DistanceNodeConfig, reads=("a", "b"))
def run_distance(config: DistanceNodeConfig, inputs, ctx):
    out = l2_distance(node_model(config, ctx.data, torch.device("cpu")), inputs["a"].state, inputs["b"].state)
    return NodeOutput(result=out, metrics={"l2": out["l2"]})
