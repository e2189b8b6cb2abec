"""Gradient ascent on the forget set while descending on the retain set: `gradient_ascent` takes CE(r) - CE(f) every
step; `neggrad_plus` (the reference's alternating gradient ascent) makes a pass ascending CE on the forget set, then
a pass descending CE on the retain set, alternately."""

import torch.nn.functional as F

from workloads.methods.base import UnlearningMethod, register_method


@register_method("neggrad_plus", schedule="alternating")
@register_method("gradient_ascent")
class GradientAscent(UnlearningMethod):
    vmappable = True

    def retain_loss(self, model, x, y, ctx):
        return F.cross_entropy(model(x), y)

    def forget_loss(self, model, x, y, ctx):
        return -F.cross_entropy(model(x), y)
