"""Instance-wise unlearning (Cha et al., "Learning to Unlearn: Instance-wise Unlearning for Pre-trained
Classifiers", AAAI 2024), as its reference code computes it (csm9493/L2UL:
`main_unlearn_cifar10_mixed_label_resnet18.py` and `utils.py`: `adv_attack`, `estimate_parameter_importance`;
advertorch's `L2PGDAttack`).

From the pretrained model and the forget instances alone, with no retain data (`uses_retain_set = False`):

- forget term: -CE(f(x_f), y_f), the instances pushed away from their label (`forget_target: away`, the reference's
  only form; `relabel` instead descends CE to a fixed wrong label per instance, drawn once: the paper's relabelling
  scenario, which its released code does not include);
- adversarial examples (`l2ul_adv`, `l2ul`): before unlearning, `num_adv_images` rounds over the forget instances in
  batches of `batch_size`, each instance given a random target label (the reference's rule: uniform over the classes,
  and where that is the true label, class C // 2; `adv_labels: uniform_wrong` draws only wrong labels) and attacked
  by targeted L2 PGD in eval mode (`pgd_eps`, step `pgd_alpha`, `pgd_iter` steps, random start, advertorch's
  normalised-gradient step and projections, inputs clipped to [clip_min, clip_max]). Every step then takes one batch
  of `adv_batch_size` adversarial examples, labelled with their target (the model's own prediction where the attack
  succeeded), and one batch of forget instances, both in the order they were made (the reference's loaders do not
  shuffle), each term weighted by its share of the step's rows: loss = -CE(f) * n_f / (n_f + n_a) + CE(adv) * n_a /
  (n_f + n_a);
- weight importance (`l2ul_importance`, `l2ul`): MAS (Aljundi et al.) on the forget instances, the absolute gradient
  of the mean L2 norm of the outputs (train mode), times the batch's rows, over ceil-ish (n // batch_size + 1)
  batches; per parameter tensor min-max normalised and inverted, so the parameters the forget instances depend on
  least (and the rest of the data, by this proxy, most) are held: + reg_lamb * sum imp * (theta - theta_0)^2 / 2. The
  reference accumulates the importance batches' gradients without zeroing them in between (its `zero_grad` is the
  other model's optimiser's); `importance_grads: accumulated` reproduces that, `per_batch` zeroes them (MAS's form).
  With the reference's 16 instances and batches of 32 there is one batch and both agree. A tensor whose importances
  are all equal (max = min, where the reference divides by zero) is held fully (importance 1);
- SGD (lr 1e-3, momentum 0.9, weight decay 1e-4), train mode; after every step the forget instances are scored in
  eval mode and unlearning stops once their accuracy is at most `stop_at_forget_acc` (the reference: 0), within the
  step budget of `epochs` (the reference's cap is 1000 passes over its adversarial examples).

`l2ul_naive` is the reference's first baseline: the forget term alone, SGD, the same stop.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from workloads.forget import wrong_labels
from workloads.methods.base import OptimizerConfig, UnlearningMethod, check_choice, register_method
from workloads.methods.proxy import accuracy

ADV_LABELS = ("reference", "uniform_wrong")
FORGET_TARGETS = ("away", "relabel")
IMPORTANCE_GRADS = ("accumulated", "per_batch")


@dataclass
class L2ULConfig(OptimizerConfig):
    adv_batch_size: int = MISSING  # adversarial examples per step
    num_adv_images: int = MISSING  # adversarial examples made per forget instance
    pgd_eps: float = MISSING  # L2 radius of the perturbation
    pgd_alpha: float = MISSING  # PGD step length (L2)
    pgd_iter: int = MISSING  # PGD steps
    clip_min: Optional[float] = MISSING  # input domain; null: the forget instances' smallest value
    clip_max: Optional[float] = MISSING  # null: their largest value
    adv_labels: str = MISSING  # reference | uniform_wrong
    reg_lamb: float = MISSING  # weight of the importance penalty
    importance_grads: str = MISSING  # accumulated (the reference) | per_batch
    forget_target: str = MISSING  # away (-CE on the label) | relabel (CE to a fixed wrong label)
    stop_at_forget_acc: float = MISSING  # stop once forget accuracy is at most this (the reference: 0)

    def __post_init__(self):
        check_choice(self, "adv_labels", ADV_LABELS)
        check_choice(self, "forget_target", FORGET_TARGETS)
        check_choice(self, "importance_grads", IMPORTANCE_GRADS)


def l2ul_loss(
    forget_logits: torch.Tensor,
    forget_y: torch.Tensor,
    adv_logits: Optional[torch.Tensor] = None,
    adv_y: Optional[torch.Tensor] = None,
    away: bool = True,
) -> torch.Tensor:
    """The forget term (-CE on the label when `away`, else CE to the given labels) and the adversarial examples' CE
    at their labels, each weighted by its share of the step's rows."""
    n_f, n_a = len(forget_y), 0 if adv_y is None else len(adv_y)
    forget = F.cross_entropy(forget_logits, forget_y)
    loss = (-forget if away else forget) * (n_f / (n_f + n_a))
    if n_a:
        loss = loss + F.cross_entropy(adv_logits, adv_y) * (n_a / (n_f + n_a))
    return loss


def importance_penalty(model: nn.Module, start: dict, importance: dict) -> torch.Tensor:
    """sum over parameters of importance * (theta - theta_0)^2 / 2."""
    terms = [(importance[n] * (p - start[n]).pow(2)).sum() / 2 for n, p in model.named_parameters() if n in importance]
    return torch.stack(terms).sum()


def normalised_importance(raw: dict) -> dict:
    """Per tensor: 1 - (imp - min) / (max - min): the least important parameters held most. A constant tensor
    (max = min) is held fully."""
    out = {}
    for name, imp in raw.items():
        spread = imp.max() - imp.min()
        scaled = (imp - imp.min()) / spread if spread > 0 else torch.zeros_like(imp)
        out[name] = 1 - scaled
    return out


def mas_importance(model: nn.Module, x: torch.Tensor, batch_size: int, accumulated: bool) -> dict:
    """The penalty's importances: MAS on the forget instances, normalised and inverted."""
    return normalised_importance(mas_gradients(model, x, batch_size, accumulated))


def mas_gradients(model: nn.Module, x: torch.Tensor, batch_size: int, accumulated: bool) -> dict:
    """MAS on the rows of x (`estimate_parameter_importance`): |d mean_i ||f(x_i)||_2 / d theta| times the batch's
    rows, summed over (len // batch_size + 1) batches (as many as exist), divided by that many batches' worth of rows,
    in train mode on a copy of the model; gradients carried over between batches when `accumulated`."""
    model = copy.deepcopy(model)
    model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    raw = {n: torch.zeros_like(p) for n, p in named}
    carried = {n: torch.zeros_like(p) for n, p in named}
    batches = len(x) // batch_size + 1
    for start in range(0, min(len(x), batches * batch_size), batch_size):
        xb = x[start : start + batch_size]
        grads = torch.autograd.grad(model(xb).norm(p=2, dim=1).mean(), [p for _, p in named], allow_unused=True)
        for (n, p), g in zip(named, grads):
            g = torch.zeros_like(p) if g is None else g
            carried[n] = carried[n] + g if accumulated else g
            raw[n] += carried[n].abs() * len(xb)
    return {n: imp / (batches * batch_size) for n, imp in raw.items()}


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))


def clamp_l2(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """Each row scaled into the L2 ball of `radius` (advertorch's clamp_by_pnorm)."""
    return delta * torch.clamp(radius / _l2_norms(delta), max=1.0)


def targeted_l2_pgd(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    cfg: L2ULConfig,
    bounds: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """advertorch's targeted L2PGDAttack with a random start: delta uniform in the input domain minus x, clamped to
    the eps ball and the domain; each step ascends -CE(sum) to the target along the L2-normalised gradient, then
    clips to the domain and the ball."""
    low, high = bounds
    delta = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device) * (high - low) + low - x
    delta = (x + clamp_l2(delta, cfg.pgd_eps)).clamp(low, high) - x
    for _ in range(cfg.pgd_iter):
        delta.requires_grad_(True)
        loss = -F.cross_entropy(model(x + delta), target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        step = grad / torch.clamp(_l2_norms(grad), min=1e-6)
        delta = (x + delta.detach() + cfg.pgd_alpha * step).clamp(low, high) - x
        delta = clamp_l2(delta, cfg.pgd_eps)
    return (x + delta).clamp(low, high).detach()


def attack_labels(y: torch.Tensor, num_classes: int, rule: str, generator: torch.Generator) -> torch.Tensor:
    """Target labels: `reference` draws uniformly over the classes and puts class C // 2 where that hit the true label
    (which can be the true label again); `uniform_wrong` draws uniformly over the other classes."""
    if rule == "uniform_wrong":
        return wrong_labels(y.cpu(), num_classes, _cpu(generator)).to(y.device)
    drawn = (torch.rand(len(y), generator=generator, device=generator.device) * num_classes).long().to(y.device)
    return torch.where(drawn == y, torch.full_like(y, num_classes // 2), drawn)


def _cpu(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from `generator` (wrong_labels draws on the CPU)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator().manual_seed(seed)


def in_order(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    """Endless batches in the rows' order, as an unshuffled loader cycled."""
    starts = range(0, len(y), batch_size)
    return itertools.cycle([(x[i : i + batch_size], y[i : i + batch_size]) for i in starts])


@register_method("l2ul_naive", adversarial=False, importance=False)
@register_method("l2ul_importance", adversarial=False)
@register_method("l2ul_adv", importance=False)
@register_method("l2ul")
class L2UL(UnlearningMethod):
    Config = L2ULConfig
    uses_retain_set = False
    adversarial = True
    importance = True

    @classmethod
    def batches_per_step(cls, cfg: L2ULConfig) -> int:
        return 2 if cls.adversarial else 1

    def run(self, model, ctx, optimizer, total):
        cfg = self.cfg
        start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        importance = None
        if self.importance:
            importance = mas_importance(model, ctx.forget_x, cfg.batch_size, cfg.importance_grads == "accumulated")
        adversarial = self.adversarial_examples(model, ctx) if self.adversarial else None
        forget_y = ctx.forget_y
        if cfg.forget_target == "relabel":  # one fixed wrong label per instance
            forget_y = wrong_labels(ctx.forget_y.cpu(), ctx.num_classes, _cpu(ctx.generator)).to(ctx.forget_y.device)
        forget = in_order(ctx.forget_x, forget_y, cfg.batch_size)
        adv = None if adversarial is None else in_order(*adversarial, cfg.adv_batch_size)
        # A pass: over the adversarial examples (the reference's loop zips them with the cycled forget batches).
        rows, size = (
            (len(forget_y), cfg.batch_size) if adversarial is None else (len(adversarial[1]), cfg.adv_batch_size)
        )
        per_pass, curve, running, taken = -(-rows // size), [], 0.0, 0
        while taken < total:
            model.train()
            loss = self.step_loss(model, next(forget), next(adv) if adv else None, start, importance)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running, taken = running + loss.item(), taken + 1
            stop = accuracy(model, ctx.forget_x, ctx.forget_y) <= cfg.stop_at_forget_acc
            if stop or taken % per_pass == 0 or taken == total:
                curve.append((taken, running / (taken - (curve[-1][0] if curve else 0))))
                running = 0.0
            if stop:
                break
        ctx.report["l2ul"] = self.summary(model, ctx, taken, adversarial)
        return curve

    def step_loss(self, model, forget_batch, adv_batch, start, importance) -> torch.Tensor:
        (xf, yf), away = forget_batch, self.cfg.forget_target == "away"
        if adv_batch is None:
            loss = l2ul_loss(model(xf), yf, away=away)
        else:
            loss = l2ul_loss(model(xf), yf, model(adv_batch[0]), adv_batch[1], away=away)
        if importance is not None:
            loss = loss + self.cfg.reg_lamb * importance_penalty(model, start, importance)
        return loss

    def adversarial_examples(self, model, ctx) -> tuple[torch.Tensor, torch.Tensor]:
        """`num_adv_images` rounds over the forget instances in batches, each instance attacked toward a random
        label, in eval mode, from the model before any unlearning step."""
        cfg, x, y = self.cfg, ctx.forget_x, ctx.forget_y
        bounds = (
            float(x.min()) if cfg.clip_min is None else cfg.clip_min,
            float(x.max()) if cfg.clip_max is None else cfg.clip_max,
        )
        was_training = model.training
        model.eval()
        made, labels = [], []
        for _ in range(cfg.num_adv_images):
            for i in range(0, len(y), cfg.batch_size):
                target = attack_labels(y[i : i + cfg.batch_size], ctx.num_classes, cfg.adv_labels, ctx.generator)
                made.append(targeted_l2_pgd(model, x[i : i + cfg.batch_size], target, cfg, bounds, ctx.generator))
                labels.append(target)
        model.train(was_training)
        return torch.cat(made), torch.cat(labels)

    def summary(self, model, ctx, steps: int, adversarial) -> dict:
        out = {"steps": steps, "forget_acc": accuracy(model, ctx.forget_x, ctx.forget_y)}
        if adversarial is not None:
            out["adversarial_examples"] = len(adversarial[1])
            out["adversarial_hit_rate"] = accuracy(ctx.start, *adversarial)  # the original predicts their labels
        return out
