"""The HTML report of a sweep: one self-contained file (figures embedded as base64 SVG, styles and a few lines of
script inline, nothing fetched), so it opens the same from the output folder, an e-mail or MLflow's artifact view.

It holds the sweep's facts, the models ranked by relearning resistance among those above a test-accuracy floor
(ranking.py; every column sorts on a click), the Spearman correlations, every figure and the per-seed numbers."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from orchestrator.report.figures import write_figures
from orchestrator.report.ranking import default_floor, resistance_order
from orchestrator.report.rows import Model, ks, models, seed_numbers
from orchestrator.report.stamp import STAMP, recorded, stamp
from orchestrator.report.verdicts import explain, readings, setting_of

CAPTIONS = {
    "relearning_curves": (
        "Held-out forget accuracy (%) while relearning, from step 0 (the model before the attack, as its own "
        "evaluation measured it); retrained control dashed, original dotted."
    ),
    "recovery_vs_k": "Held-out forget accuracy relearning brings back (relearned − unlearned, in points), against k.",
    "forget_vs_test": "Held-out forget accuracy after relearning against the model's test accuracy, both in %.",
    "lmc": "Accuracy (%) along the linear path from the original (t=0) to each model (t=1).",
    "weightspace_vs_recovery": (
        "L2 distance and loss barrier to the original against recovery (points); Spearman's ρ across method "
        "settings, with its p-value and n."
    ),
    "epsilon_distribution": (
        "Per-example epsilon of each population against the retrained one (the competition's forget quality); "
        "the null, an independent retrained population, dashed. Shading: the buckets and the points they score."
    ),
    "task_space_utility_x_healed": "Utility × healed over regularity × discovery rate, per model (means over seeds).",
    "task_space_healed": "Healed: accuracy on the corrupted training examples against their true labels.",
    "task_space_utility": "Utility: clean test accuracy.",
}
CORRELATION_NAMES = {
    "l2_to_original": "L2 to the original",
    "loss_barrier": "loss barrier",
    "error_barrier": "error barrier",
}
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}td{white-space:nowrap}
th{background:#f2f2f2;cursor:pointer;vertical-align:bottom}td:first-child,th:first-child,td.name,th.name{text-align:left}
td.name{white-space:normal;min-width:10em;max-width:22em}
tr.below td{color:#888}tr.reference td{background:#f7f7f7;font-style:italic}
figure{margin:1.5em 0}img{width:100%;max-width:1000px;border:1px solid #eee}
.note{color:#555;font-size:13px;max-width:70em}"""
# Sorting: a click on a header orders the table's rows by that column's data-v (numbers) or text; again reverses.
# th.cellIndex, not the header's place among every sortable table's headers: the report has several tables.
SCRIPT = """document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>{
const i=th.cellIndex,body=th.closest('table').tBodies[0],rows=[...body.rows],up=th.dataset.up!=='1';
th.dataset.up=up?'1':'0';
const v=r=>{const c=r.cells[i],n=parseFloat(c.dataset.v);return isNaN(n)?c.textContent:n};
rows.sort((a,b)=>{const x=v(a),y=v(b);return (x>y?1:x<y?-1:0)*(up?1:-1)});rows.forEach(r=>body.appendChild(r));}));"""


@dataclass(frozen=True)
class Column:
    header: str
    number: str  # the name in Model.mean / seed_numbers
    unit: str = "%"  # "%": an accuracy, shown in %; "pts": a difference of accuracies in points; "": as it is
    digits: int = 1


def _columns(grid: list[int], populations: Optional[dict] = None) -> list[Column]:
    """The columns of every table of the report, in the terminal's words and units; with populations, their
    distributional scores first."""
    scores = []
    if populations:
        scores = [
            Column("forget quality", "distributional.forget_quality", "", 3),
            Column("null", "distributional.null_forget_quality", "", 3),
            Column("score", "distributional.score", "", 3),
            Column("KLoM95 forget", "distributional.klom_forget_p95", "", 2),
        ] + [
            Column(f"forget quality k={k}", f"distributional.relearned.k{k}.forget_quality", "", 3)
            for k in sorted(populations.get("null_relearned", {}), key=int)
        ]
    return scores + (
        [
            Column("test %", "unlearned.test_acc"),
            Column("forget %", "unlearned.forget_acc"),
            Column("held-out forget %", "unlearned.heldout_forget_acc"),
        ]
        + [Column(f"after relearn k={k} %", f"relearned.k{k}.heldout_forget_acc") for k in grid]
        + [Column(f"recovery k={k} (points)", f"recovery.k{k}", "pts") for k in grid]
        + [
            Column("L2 to orig", "l2_to_original", "", 2),
            Column("loss barrier", "lmc.loss_barrier", "", 3),
            Column("error barrier %", "lmc.error_barrier"),
        ]
    )


def _cell(value: Optional[float], sd: Optional[float], column: Column) -> str:
    """A number as the tables print it; with several seeds always `mean ± sd`, so every row of a column reads alike."""
    if value is None:
        return '<td data-v="">-</td>'
    scale = 1 if column.unit == "" else 100
    sign = "+" if column.unit == "pts" else ""
    text = f"{scale * value:{sign}.{column.digits}f}" + ("" if sd is None else f" ± {scale * sd:.{column.digits}f}")
    return f'<td data-v="{value}">{text}</td>'


def _row(cells: str, name: str, reading: str, n: int, rank: str, css: str) -> str:
    return (
        f'<tr class="{css}"><td data-v="{rank if rank.isdigit() else 0}">{rank}</td><td class="name">'
        f'{html.escape(name)}</td><td class="name">{html.escape(reading)}</td><td data-v="{n}">{n}</td>{cells}</tr>'
    )


def _table(table_id: str, first: str, columns: list[Column], rows: list[str]) -> str:
    head = "".join(
        f"<th>{html.escape(h)}</th>" for h in [first, "model", "reading", "seeds", *[c.header for c in columns]]
    )
    return (
        f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def references_table(shown: list[Model], grid: list[int]) -> str:
    """The original and the retrained control: what every setting is read against, not ranked among them."""
    columns = _columns(grid)
    rows = []
    for m in (m for m in shown if m.role != "unlearned"):
        cells = "".join(_cell(m.mean(c.number), m.sd(c.number), c) for c in columns)
        rows.append(_row(cells, m.name, "reference", len(m.rows), "", "reference"))
    return _table("references", "", columns, rows)


def ranked_table(
    shown: list[Model], grid: list[int], floor: Optional[float], readings: dict, populations: Optional[dict] = None
) -> str:
    columns, rows = _columns(grid, populations), []
    for rank, entry in enumerate(resistance_order(shown, grid[-1] if grid else None, floor), start=1):
        m = entry.model
        cells = "".join(_cell(m.mean(c.number), m.sd(c.number), c) for c in columns)
        reading = readings.get(setting_of(vars(m)), "")
        rows.append(_row(cells, m.name, reading, len(m.rows), str(rank), "usable" if entry.usable else "below"))
    return _table("ranked", "rank", columns, rows)


def correlations_table(summary: dict) -> str:
    def number(value: Optional[float], spec: str) -> str:
        if value is None:
            return "<td>-</td>"
        text = ("< 0.001" if value < 0.001 else f"{value:.2g}") if spec == "p" else f"{value:{spec}}"
        return f'<td data-v="{value}">{text}</td>'

    rows = "".join(
        f"<tr><td>{html.escape(CORRELATION_NAMES.get(name.split('_vs_')[0], name))} vs recovery, k={c['k']}</td>"
        f"<td>{c['n']}</td>{number(c['spearman'], '.2f')}{number(c['p_value'], 'p')}</tr>"
        for name, c in (summary.get("correlations") or {}).items()
    )
    return (
        '<table class="sortable" id="correlations"><thead><tr><th>measure</th><th>n settings</th><th>Spearman ρ</th>'
        f"<th>p</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def per_seed_table(shown: list[Model], grid: list[int], readings: dict) -> str:
    """Every model on every seed, in the columns and units of the tables above."""
    columns, rows = _columns(grid), []
    for m in shown:
        reading = "reference" if m.role != "unlearned" else readings.get(setting_of(vars(m)), "")
        for row in m.rows:
            numbers = seed_numbers(row)
            cells = "".join(_cell(numbers.get(c.number), None, c) for c in columns)
            rows.append(_row(cells, m.name, reading, 1, str(row["seed"]), "seed"))
    return _table("per-seed", "seed", columns, rows)


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


def render(summary: dict, figures: dict[str, Path], floor: Optional[float], default: bool = True) -> str:
    summary = recorded(summary)  # a re-run's summary draws the report of the sweep it reused
    shown, grid = models(summary), ks(summary)
    found, n = readings(summary), summary.get("nodes", {})
    seeds = len(summary.get("seeds") or []) or 1
    criteria = (summary.get("verdicts") or {}).get("criteria")
    if floor is None:
        usable = "every setting counts as usable"
    elif default and criteria:
        margin = 100 * criteria["test_margin"]
        usable = f"not damaged: test accuracy at least {100 * floor:.1f}%, within {margin:g} points of the original's"
    else:
        usable = f"test accuracy at least {100 * floor:.1f}% (--test-floor)"
    strongest = f"k={grid[-1]}" if grid else "no relearning"
    facts = (
        f"sweep id {html.escape(str(summary.get('sweep_id')))} · "
        f"executor {html.escape(str(summary.get('executor')))} · "
        f"{n.get('total', '?')} nodes ({n.get('executed', '?')} executed, {n.get('cached', '?')} cached, "
        f"{n.get('failed', '?')} failed) · {summary.get('wall_seconds', 0):.0f} s · {seeds} seed{'s' * (seeds > 1)}"
    )
    words = f" Readings: {html.escape(explain(criteria))}." if criteria else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(summary["sweep"])}: unlearning report</title><style>{STYLE}</style></head><body>
<h1>{html.escape(summary["sweep"])}: unlearning and relearning</h1><p class="note">{facts}</p>
<h2>References</h2>
<p class="note">The original and the retrained control (trained without the forget set), which every method
setting is read against. Accuracies in %, recoveries in points, mean ± sd over seeds.</p>
{references_table(shown, grid)}
<h2>Method settings by resistance to relearning</h2>
<p class="note">Usable settings first ({html.escape(usable)}), then the rest greyed; within each, the lowest held-out
forget accuracy after the strongest attack ({strongest}) first.{words} Click a header to sort.</p>
{ranked_table(shown, grid, floor, found, summary.get("distributional"))}
{distributional_html(summary)}
<h2>Does weight space predict relearning?</h2>
<p class="note">Spearman's rank correlation across method settings (each by its means over seeds) between a
weight-space measure and recovery; p is its two-sided p-value.</p>{correlations_table(summary)}
<h2>Figures</h2>{"".join(figure_html(name, path) for name, path in figures.items())}
<details><summary>Every model and seed</summary>{per_seed_table(shown, grid, found)}</details>
<script>{SCRIPT}</script></body></html>"""


def write_report(summary: dict, folder: Path, floor: Optional[float] = None) -> Path:
    """Figures (PNG and SVG), `report.html` and what they were drawn from (stamp.py) in `folder`; `floor` None: the
    line below which a setting reads damaged (ranking.default_floor). Returns the report's path."""
    figures = write_figures(recorded(summary), folder)
    path = folder / "report.html"
    chosen = default_floor(models(summary), summary) if floor is None else floor
    path.write_text(render(summary, figures, chosen, default=floor is None), encoding="utf-8")
    (folder / STAMP).write_text(json.dumps(stamp(summary, floor)))
    return path
