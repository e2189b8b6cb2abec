"""`finetune` (the reference's catastrophic forgetting): cross-entropy on the retain set only.
The weight edits, `ssd` and `retrain` subclass it: they change the weights once, then fine-tune exactly like this."""

import torch.nn.functional as F

from workloads.methods.base import UnlearningMethod, register_method


@register_method("finetune")
class Finetune(UnlearningMethod):
    uses_forget_set = False
    vmappable = True  # and so its weight edits (each member edits its own copy before the members step together)

    def retain_loss(self, model, x, y, ctx):
        return F.cross_entropy(model(x), y)
