"""The REM study's ResNet-9 as its reference code builds it (if-loops/rem, src/resnet.py, `ResNet9ETD`), registered as
`resnet9_rem`. Not the DAWNBench ResNet-9 that `resnet9` is (ReLU, widths up to 512): that one stays as it was, so
stored keys naming it keep their meaning.

Every unit is conv (with bias) - batch-norm - CELU(alpha 0.075). conv1: 3x3, w channels; conv2: 5x5 stride 2, 2w;
res1: a residual pair of 3x3 units at 2w; conv3: 3x3 at 4w then max-pool 2; res2: a residual pair at 4w; conv4: 3x3
without padding back to 2w; then global max-pool and a linear head without bias. w = 64 gives the reference's
64-128-256-128 and 2,276,224 parameters for 10 classes. With `generalisation` < 1, example-tied dropout sits where the
reference puts it: after conv1, conv2, res1 (after the residual sum), conv3, res2 (after the sum) and conv4, six
places sharing four masks as the reference's "pairs" do (conv2 and res1 one mask, conv3 and res2 another). Drop mode
does not rescale the always-on channels by default (`drop_scale: none`, the reference's `drop_no_scaling`).

The stem is conv1 and its mask; `Blocks.blocks` are the five later places, so hidden[0..5] are the six masked
outputs. Measured on the CPU machine (2 cores, shared, float32): width 64 at batch 512 takes several seconds a step;
the tests' width 4 a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from workloads.models.base import Blocks, register_model
from workloads.models.resnet9 import Residual
from workloads.models.tied_dropout import TiedDropoutOptions, check_options, tied_after


@dataclass
class ResNet9RemConfig(TiedDropoutOptions):
    width: int = 64  # conv1's channels; conv2, conv3 and conv4 have 2x, 4x and 2x (the reference: 64)
    celu_alpha: float = 0.075
    drop_scale: str = "none"  # the reference's drop mode (tied_dropout.DROP_SCALES)


def unit(c_in: int, c_out: int, alpha: float, kernel: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding), nn.BatchNorm2d(c_out), nn.CELU(alpha)]


@register_model("resnet9_rem", ResNet9RemConfig)
def resnet9_rem(cfg: ResNet9RemConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3 or min(input_shape[1:]) < 12:
        raise ValueError(
            f"the REM ResNet-9 takes images (C, H, W) of at least 12 pixels a side (conv4 has no padding); this "
            f"dataset's inputs have shape {tuple(input_shape)}"
        )
    if cfg.width < 1:
        raise ValueError(f"model.args.width: must be at least 1, got {cfg.width}")
    check_options(cfg)
    w, a = cfg.width, cfg.celu_alpha
    # One layer per mask; a layer listed twice is the same module, so both places use the same example's mask.
    masks = [tied_after(channels, cfg, pair) for pair, channels in enumerate((w, 2 * w, 4 * w, 2 * w))]
    pair = lambda c: nn.Sequential(*unit(c, c, a), *unit(c, c, a))
    stem = nn.Sequential(*unit(input_shape[0], w, a), *masks[0])
    blocks = [
        nn.Sequential(*unit(w, 2 * w, a, kernel=5, stride=2, padding=2), *masks[1]),
        nn.Sequential(Residual(pair(2 * w)), *masks[1]),
        nn.Sequential(*unit(2 * w, 4 * w, a), nn.MaxPool2d(2), *masks[2]),
        nn.Sequential(Residual(pair(4 * w)), *masks[2]),
        nn.Sequential(*unit(4 * w, 2 * w, a, padding=0), *masks[3]),
    ]
    head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(2 * w, num_classes, bias=False))
    return Blocks(stem, blocks, head)
