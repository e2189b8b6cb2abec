"""`evaluate`: a model on every evaluation split (retain, forget, held-out forget, test, canaries), scored by every
registered metric (workloads/metrics.py): accuracy, loss and per-class accuracy per split, `tow`, and loss-based
membership inference. Version 2 added membership inference. The training-set splits are scored on clean images, or
on one seeded augmented draw with `evaluation.augment` (workloads/evaluation.py); the test set always on clean ones."""

from workloads.config import keyed_section
from workloads.evaluation import EvaluationConfig, scored_images
from workloads.metrics import compute_metrics
from workloads.nodes.base import NodeOutput, register_kind
from workloads.nodes.common import load_model, scoring_work, split_tensors
from workloads.nodes.configs import EvaluateNodeConfig
from workloads.train import predict


@register_kind(
    "evaluate",
    EvaluateNodeConfig,
    version=2,
    reads=("model", "forget_scores"),
    reads_forget_set=True,
    work=scoring_work(),
    key_view=lambda config: keyed_section(config, "evaluation", EvaluationConfig),
)
def run_evaluate(config: EvaluateNodeConfig, inputs, ctx):
    model = load_model(config, ctx.data, inputs["model"].state, ctx.device)
    images = lambda split, x: x if split == "test" else scored_images(x, config.evaluation, ctx.data.augment)
    scored = {
        split: (predict(model, images(split, x)) if len(y) else None, y) for split, (x, y) in split_tensors(ctx).items()
    }
    result = compute_metrics(scored, ctx.data.num_classes)
    return NodeOutput(result=result, metrics={k: v for k, v in result.items() if isinstance(v, float)})
