"""The REM study's ResNet-9 as its reference code builds it (workloads/models/resnet9_rem.py): its size, its output,
where its example-tied dropout sits and which places share a mask; and drop mode's scaling of the always-on channels
(workloads/models/tied_dropout.py, `drop_scale`) on fixed tensors."""

import pytest
import torch
from torch import nn

from workloads.models import MODELS, ResNet9RemConfig, build_model
from workloads.models.tied_dropout import ExampleTiedDropout, TiedDropoutOptions, check_options, tied_layers, tied_to


def reference_parameter_count(num_classes: int = 10) -> int:
    """Counted from the reference's `ResNet9ETD.__init__` (src/resnet.py): `conv_bn` is Conv2d (bias on, PyTorch's
    default) + BatchNorm2d (weight and bias) + CELU; the head is Linear(128, classes, bias=False)."""
    conv_bn = lambda c_in, c_out, k=3: c_in * c_out * k * k + c_out + 2 * c_out
    return (
        conv_bn(3, 64)  # conv1
        + conv_bn(64, 128, 5)  # conv2: 5x5, stride 2
        + 2 * conv_bn(128, 128)  # res1
        + conv_bn(128, 256)  # conv3 (+ max-pool)
        + 2 * conv_bn(256, 256)  # res2
        + conv_bn(256, 128)  # conv4, no padding
        + 128 * num_classes  # fc, no bias
    )


def test_full_width_has_the_reference_parameter_count_and_output_shape():
    assert reference_parameter_count() == 2_276_224
    for etd in ({}, {"generalisation": 0.5, "memorisation": 0.2}):  # masks have no parameters
        model = build_model("resnet9_rem", ResNet9RemConfig(**etd), (3, 32, 32), 10, 0)
        assert sum(p.numel() for p in model.parameters()) == 2_276_224
    assert build_model("resnet9_rem", ResNet9RemConfig(), (3, 32, 32), 100, 0)(torch.rand(2, 3, 32, 32)).shape == (
        2,
        100,
    )
    model = build_model("resnet9_rem", ResNet9RemConfig(), (3, 32, 32), 10, 0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 128, 128, 256, 256, 256, 128]
    assert convs[1].kernel_size == (5, 5) and convs[1].stride == (2, 2) and convs[-1].padding == (0, 0)
    assert all(c.bias is not None for c in convs) and model.head[-1].bias is None
    assert sum(isinstance(m, nn.CELU) and m.alpha == 0.075 for m in model.modules()) == 8
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert MODELS.get("resnet9_rem").config is ResNet9RemConfig
    assert sum(
        p.numel() for p in build_model("resnet9", MODELS.get("resnet9").config(), (3, 32, 32), 10, 0).parameters()
    ) == (6_573_130)  # the DAWNBench ResNet-9 keeps its name and size


def tiny(**etd):
    return build_model("resnet9_rem", ResNet9RemConfig(width=4, **etd), (3, 16, 16), 10, 0)


def test_six_masked_places_share_four_masks_and_drop_mode_zeroes_the_memorisation_channels_unscaled():
    model = tiny(generalisation=0.5, memorisation=0.5)
    places = [m for block in [model.stem, *model.blocks] for m in block if isinstance(m, ExampleTiedDropout)]
    assert len(places) == 6 and len(tied_layers(model)) == 4
    assert places[1] is places[2] and places[3] is places[4]  # conv2/res1 and conv3/res2: the reference's pairs
    assert [p.channels for p in places] == [4, 8, 8, 16, 16, 8]
    x = torch.rand(5, 3, 16, 16)
    model.eval()
    _, hidden = model(x, return_hidden=True)
    assert len(hidden) == 6  # every masked place is a hidden state
    for h, place in zip(hidden, places):
        assert (h[:, place.fixed :] == 0).all() and (h[:, : place.fixed] != 0).any()
    # Drop mode does not rescale: the always-on half is what the same model computes with no mask layer at all.
    assert places[0].drop_factor == 1.0
    plain_stem = nn.Sequential(*list(model.stem)[:-1])
    assert torch.equal(hidden[0][:, :2], plain_stem(x)[:, :2])
    model.train()
    with tied_to(model, torch.arange(5)):
        _, trained = model(x, return_hidden=True)
    assert (trained[1][:, 4:] != 0).any()  # while training, each example's own memorisation channels are on
    # The same example keeps the same channels at both places of a pair (the output after res1 is masked again).
    kept_conv2 = (trained[1][:, 4:] != 0).flatten(2).any(2)
    kept_res1 = (trained[2][:, 4:] != 0).flatten(2).any(2)
    assert torch.equal(kept_res1, kept_conv2) and len({tuple(row.tolist()) for row in kept_conv2}) > 1


def test_small_images_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="at least 12 pixels"):
        build_model("resnet9_rem", ResNet9RemConfig(width=4), (3, 8, 8), 10, 0)


@pytest.mark.parametrize(
    "drop_scale, factor", [("none", 1.0), ("kept_share", (10 + 0.2 * 10) / 10), ("reference_p_mem", (0.5 + 0.2) / 0.5)]
)
def test_drop_mode_scales_the_always_on_channels_as_named(drop_scale, factor):
    layer = ExampleTiedDropout(20, TiedDropoutOptions(0.5, 0.2, drop_scale=drop_scale), layer=0)
    h = torch.full((3, 20), 2.0)
    layer.eval()
    out = layer(h)
    assert torch.allclose(out[:, :10], torch.full((3, 10), 2.0 * factor)) and (out[:, 10:] == 0).all()
    layer.train()
    layer.ids = torch.arange(3)  # mask mode is never scaled
    masked = layer(h)
    assert (masked[:, :10] == 2.0).all() and set(masked[:, 10:].unique().tolist()) <= {0.0, 2.0}


def test_the_reference_p_mem_scale_is_one_without_or_with_all_memorisation_and_unknown_scales_are_refused():
    for memorisation in (0.0, 1.0):
        layer = ExampleTiedDropout(20, TiedDropoutOptions(0.5, memorisation, drop_scale="reference_p_mem"), 0)
        assert layer.drop_factor == 1.0
    assert ExampleTiedDropout(20, TiedDropoutOptions(0.5, 0.2), 0).drop_factor == pytest.approx(1.2)  # the default
    with pytest.raises(ValueError, match="model.args.drop_scale"):
        check_options(TiedDropoutOptions(0.5, 0.2, drop_scale="half"))
