"""KLoM, the KL divergence of margins (Georgiev et al., "Attribute-to-Delete", arXiv 2410.23232), as the Easy Data
Unlearning Bench scores it (arXiv 2602.16400; EasyDUB-code easydub/eval.py `binned_kl_divergence` and
`klom_from_margins`, after data-unlearning-bench src/eval.py `compute_binned_KL_div` and `kl_from_margins`):

- the margin of an example under a model: its true class's logit minus the log-sum-exp of the other logits
  (`margin: logsumexp`, the bench's `get_margin` and `compute_margins_multi`), or minus the largest other logit
  (`margin: max_other`, as METHODS.md and the issue word it);
- per example, KL(unlearned || oracle) between the two samples of margins (one per model), both clipped to
  [-clip, clip], on `bins` histogram bins spanning their joint range (one unit wide when the range is empty); q is
  floored at `eps` in the bins p occupies; the bench counts a sample in bin i when edge[i-1] <= x < edge[i]
  (np.digitize), so samples at the very top edge fall outside every bin (`count_top_edge: true` puts them in the
  last); EasyDUB sums p log(p / q) as is, data-unlearning-bench's scipy.stats.entropy first renormalises q
  (`renormalize: true`);
- reported as percentiles over the examples of a split (the bench reports the 95th).

Vectorised over examples (one searchsorted and one scatter per split), on any device; `reference_scores.py` has the
per-example loop the tests compare it with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from workloads.forget_quality import numpy_linspace

MARGINS = ("logsumexp", "max_other")


@dataclass
class KLoMConfig:
    bins: int = 20
    clip: float = 100.0
    eps: float = 1e-5
    margin: str = "logsumexp"  # logsumexp: the bench's margin; max_other: the true logit minus the largest other
    count_top_edge: bool = False  # the bench drops samples equal to the top edge (np.digitize); true: last bin
    renormalize: bool = False  # EasyDUB: no; data-unlearning-bench (scipy.stats.entropy): q renormalised
    percentiles: list[float] = field(default_factory=lambda: [50.0, 95.0])


def margins(logits: torch.Tensor, labels: torch.Tensor, kind: str = "logsumexp") -> torch.Tensor:
    """(..., n, C) logits, (n,) labels -> (..., n) float32 margins of the true class."""
    if kind not in MARGINS:
        raise ValueError(f"klom.margin: must be one of {', '.join(MARGINS)}, got {kind!r}")
    logits = logits.float()
    index = labels.to(logits.device).expand(logits.shape[:-1]).unsqueeze(-1)
    right = logits.gather(-1, index).squeeze(-1)
    others = logits.scatter(-1, index, -torch.inf)
    rest = others.logsumexp(-1) if kind == "logsumexp" else others.amax(-1)
    return right - rest


def binned_kl(p: torch.Tensor, q: torch.Tensor, cfg: KLoMConfig) -> torch.Tensor:
    """(Np, n) and (Nq, n) samples (models x examples) -> (n,) KL(p || q) per example, in float64."""
    p = p.double().clamp(-cfg.clip, cfg.clip).T  # (n, Np)
    q = q.to(p.device).double().clamp(-cfg.clip, cfg.clip).T
    low = torch.minimum(p.amin(1), q.amin(1))
    high = torch.maximum(p.amax(1), q.amax(1))
    high = torch.where(low >= high, low + 1, high)
    edges = numpy_linspace(low, high, cfg.bins + 1).contiguous()  # (n, bins + 1)

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        index = torch.searchsorted(edges, x.contiguous(), right=True)  # np.digitize: 1..bins inside, bins+1 above
        if cfg.count_top_edge:
            index = index.clamp(max=cfg.bins)
        counts = torch.zeros(len(x), cfg.bins + 2, dtype=torch.float64, device=x.device)
        counts.scatter_add_(1, index, torch.ones_like(x))
        counts = counts[:, 1 : cfg.bins + 1]
        total = counts.sum(1, keepdim=True)
        return torch.where(total > 0, counts / total.clamp(min=1), torch.zeros_like(counts))

    p_probs, q_probs = probabilities(p), probabilities(q)
    q_safe = torch.where(p_probs > 0, q_probs.clamp(min=cfg.eps), q_probs)
    if cfg.renormalize:
        q_safe = q_safe / q_safe.sum(1, keepdim=True)
    terms = torch.where(p_probs > 0, p_probs * torch.log(p_probs / q_safe), torch.zeros_like(p_probs))
    return terms.sum(1)


def percentiles(values: torch.Tensor, points: list[float]) -> dict[str, float]:
    """`p<q>` -> the q-th percentile (linear interpolation, as np.percentile), and `mean`."""
    values = values.double()
    out = {f"p{q:g}": torch.quantile(values, q / 100).item() for q in points}
    return out | {"mean": values.mean().item()}
