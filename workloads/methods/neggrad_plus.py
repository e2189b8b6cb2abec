"""`neggrad_plus` (the reference's alternating gradient ascent): a pass ascending CE on the forget set, then a pass
descending CE on the retain set, alternately."""
import torch.nn.functional as F

from workloads.methods.base import UnlearningMethod, register_method


@register_method("neggrad_plus")
class NegGradPlus(UnlearningMethod):
    schedule = "alternating"

    def retain_loss(self, model, x, y, ctx):
        return F.cross_entropy(model(x), y)

    def forget_loss(self, model, x, y, ctx):
        return -F.cross_entropy(model(x), y)
