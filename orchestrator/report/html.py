"""The HTML report of a sweep: one self-contained file (figures embedded as base64 SVG, styles and a few lines of
script inline, nothing fetched), so it opens the same from the output folder, an e-mail or MLflow's artifact view.

It holds the sweep's facts, the models ranked by relearning resistance among those above a test-accuracy floor
(ranking.py; every column sorts on a click), the Spearman correlations, every figure and the per-seed numbers."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Optional

from orchestrator.report.figures import write_figures
from orchestrator.report.ranking import default_floor, resistance_order
from orchestrator.report.rows import Model, ks, models, row_numbers
from orchestrator.report.stamp import STAMP, stamp

CAPTIONS = {
    "relearning_curves": "Held-out forget accuracy while relearning; retrained control dashed, original dotted.",
    "recovery_vs_k": "Held-out forget accuracy that relearning brings back (relearned − unlearned), against k.",
    "forget_vs_test": "Held-out forget accuracy after relearning against the model's test accuracy.",
    "lmc": "Accuracy along the linear path from the original (t=0) to each model (t=1).",
    "weightspace_vs_recovery": (
        "L2 distance and loss barrier to the original against recovery; Spearman's ρ across methods."
    ),
    "epsilon_distribution": (
        "Per-example epsilon of each population against the retrained one (the competition's forget quality); "
        "the null, an independent retrained population, dashed. Shading: the buckets and the points they score."
    ),
    "task_space_utility_x_healed": "Utility × healed over regularity × discovery rate, per model (means over seeds).",
    "task_space_healed": "Healed: accuracy on the corrupted training examples against their true labels.",
    "task_space_utility": "Utility: clean test accuracy.",
}
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}td{white-space:nowrap}
th{background:#f2f2f2;cursor:pointer}td:first-child,th:first-child,td.name{text-align:left}
tr.below td{color:#888}figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}
.note{color:#555;font-size:13px}"""
# Sorting: a click on a header orders the table's rows by that column's data-v (numbers) or text; again reverses.
SCRIPT = """document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
const body=th.closest('table').tBodies[0],rows=[...body.rows],up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';
const v=r=>{const c=r.cells[i],n=parseFloat(c.dataset.v);return isNaN(n)?c.textContent:n};
rows.sort((a,b)=>{const x=v(a),y=v(b);return (x>y?1:x<y?-1:0)*(up?1:-1)});rows.forEach(r=>body.appendChild(r));}));"""


def _cell(value: Optional[float], sd: Optional[float] = None, percent: bool = True, digits: int = 1) -> str:
    if value is None:
        return '<td data-v="">-</td>'
    scale = 100 if percent else 1
    text = f"{scale * value:.{digits}f}" + ("" if not sd else f" ± {scale * sd:.{digits}f}")
    return f'<td data-v="{value}">{text}</td>'


def _columns(grid: list[int], populations: Optional[dict] = None) -> list[tuple[str, str, bool, int]]:
    """(header, number, as percent, digits) of the ranked table; with populations, their scores too."""
    scores = []
    if populations:
        scores = [
            ("forget quality", "distributional.forget_quality", False, 3),
            ("null", "distributional.null_forget_quality", False, 3),
            ("score", "distributional.score", False, 3),
            ("KLoM95 forget", "distributional.klom_forget_p95", False, 2),
        ] + [
            (f"forget quality k={k}", f"distributional.relearned.k{k}.forget_quality", False, 3)
            for k in sorted(populations.get("null_relearned", {}), key=int)
        ]
    return scores + (
        [
            ("test", "unlearned.test_acc", True, 1),
            ("forget", "unlearned.forget_acc", True, 1),
            ("held-out forget", "unlearned.heldout_forget_acc", True, 1),
        ]
        + [(f"after relearn k={k}", f"relearned.k{k}.heldout_forget_acc", True, 1) for k in grid]
        + [(f"recovery k={k}", f"recovery.k{k}", True, 1) for k in grid]
        + [
            ("L2 to orig", "l2_to_original", False, 2),
            ("loss barrier", "lmc.loss_barrier", False, 3),
            ("error barrier", "lmc.error_barrier", True, 1),
        ]
    )


def ranked_table(
    shown: list[Model], grid: list[int], floor: Optional[float], populations: Optional[dict] = None
) -> str:
    columns = _columns(grid, populations)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["rank", "model", "seeds", *[c[0] for c in columns]])
    body = []
    for rank, entry in enumerate(resistance_order(shown, grid[-1] if grid else None, floor), start=1):
        m = entry.model
        cells = "".join(_cell(m.mean(name), m.sd(name), pct, digits) for _, name, pct, digits in columns)
        body.append(
            f'<tr class="{"usable" if entry.usable else "below"}"><td data-v="{rank}">{rank}</td>'
            f'<td class="name">{html.escape(m.name)}</td><td data-v="{len(m.rows)}">{len(m.rows)}</td>{cells}</tr>'
        )
    return f'<table class="sortable" id="ranked"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def correlations_table(summary: dict) -> str:
    def number(value: Optional[float], spec: str) -> str:
        return "<td>-</td>" if value is None else f'<td data-v="{value}">{value:{spec}}</td>'

    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{c['n']}</td>"
        f"{number(c['spearman'], '.3f')}{number(c['p_value'], '.3g')}</tr>"
        for name, c in (summary.get("correlations") or {}).items()
    )
    return (
        '<table class="sortable" id="correlations"><thead><tr><th>measure vs recovery</th><th>n</th><th>Spearman ρ</th>'
        f"<th>p</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def per_seed_table(shown: list[Model]) -> str:
    rows = [(m.name, r["seed"], row_numbers(r)) for m in shown for r in m.rows]
    names = sorted({n for _, _, numbers in rows for n in numbers})
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["model", "seed", *names])
    body = "".join(
        f'<tr><td class="name">{html.escape(name)}</td><td>{seed}</td>'
        + "".join(f'<td data-v="{numbers[n]}">{numbers[n]:.4g}</td>' if n in numbers else "<td>-</td>" for n in names)
        + "</tr>"
        for name, seed, numbers in rows
    )
    return f'<table class="sortable" id="per-seed"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def distributional_html(summary: dict) -> str:
    """The populations' section: what was compared, and the null's forget quality at each prefix of N."""
    section = summary.get("distributional")
    if not section or not section.get("null"):
        return ""
    n = section["members"]
    by_n = section["null"].get("forget_quality_by_n") or {}
    cells = "".join(f'<td data-v="{v}">{v:.3f}</td>' for v in by_n.values())
    return (
        f'<h2>Distributional evaluation</h2><p class="note">Each population of {n} models (runs of one setting '
        f"from the same original, each its own seed) is scored against {n} models retrained without the forget set: "
        "forget quality F as the NeurIPS 2023 unlearning competition computes it (1 = indistinguishable), its final "
        "score F × retain and test accuracy ratios, and KLoM (0 = the same margin distribution), P95 over the forget "
        f"examples. The null is {n} more retrained models from other seeds: the best a method can reach at this N. "
        "docs/distributional.md has the definitions.</p>"
        '<table id="null-by-n"><thead><tr><th>null F at N =</th>'
        + "".join(f"<th>{html.escape(k)}</th>" for k in by_n)
        + f"</tr></thead><tbody><tr><td>retrained vs retrained</td>{cells}</tr></tbody></table>"
    )


def figure_html(name: str, svg: Path) -> str:
    data = base64.b64encode(svg.read_bytes()).decode()
    return (
        f'<figure id="fig-{name}"><img alt="{name}" src="data:image/svg+xml;base64,{data}">'
        f"<figcaption>{html.escape(CAPTIONS.get(name, name))}</figcaption></figure>"
    )


def render(summary: dict, figures: dict[str, Path], floor: Optional[float]) -> str:
    shown, grid = models(summary), ks(summary)
    n = summary.get("nodes", {})
    floor_text = "every model counts as usable" if floor is None else f"test accuracy at least {100 * floor:.1f}%"
    strongest = f"k={grid[-1]}" if grid else "no relearning"
    facts = (
        f"sweep id {html.escape(str(summary.get('sweep_id')))} · "
        f"executor {html.escape(str(summary.get('executor')))} · "
        f"{n.get('total', '?')} nodes ({n.get('executed', '?')} executed, {n.get('cached', '?')} cached, "
        f"{n.get('failed', '?')} failed) · {summary.get('wall_seconds', 0):.0f} s"
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(summary["sweep"])}: unlearning report</title><style>{STYLE}</style></head><body>
<h1>{html.escape(summary["sweep"])}: unlearning and relearning</h1><p class="note">{facts}</p>
<h2>Models by resistance to relearning</h2>
<p class="note">Usable models first ({floor_text}), then the rest greyed; within each, the lowest held-out forget
accuracy after the strongest attack ({strongest}) first. Accuracies in %, mean ± sd over seeds.
Click a header to sort.</p>
{ranked_table(shown, grid, floor, summary.get("distributional"))}
{distributional_html(summary)}
<h2>Does weight space predict relearning?</h2>{correlations_table(summary)}
<h2>Figures</h2>{"".join(figure_html(name, path) for name, path in figures.items())}
<details><summary>Every model and seed</summary>{per_seed_table(shown)}</details>
<script>{SCRIPT}</script></body></html>"""


def write_report(summary: dict, folder: Path, floor: Optional[float] = None) -> Path:
    """Figures (PNG and SVG), `report.html` and what they were drawn from (stamp.py) in `folder`; `floor` None: 90%
    of the retrained control's test accuracy. Returns the report's path."""
    figures = write_figures(summary, folder)
    path = folder / "report.html"
    path.write_text(
        render(summary, figures, default_floor(models(summary)) if floor is None else floor), encoding="utf-8"
    )
    (folder / STAMP).write_text(json.dumps(stamp(summary, floor)))
    return path
