"""Results of a sequential comparison: per-run numbers from ``summary.json`` and the
TensorBoard events, aggregated over seeds into a Markdown table and PNG plots.

Measures (per game, method):

* eval, first / second visit: the greedy evaluation return of the game right after
  the agent trained on it for the first / second time (the diagonal entries of the
  ``continual`` return matrix in ``summary.json``: row = that visit, column = that
  game);
* train, first / second visit: the mean training episode return (sampled actions,
  ``charts/episode_return``) over the last half of that visit.

NaP's claim is that the second visit learns as well as the first; a loss of
plasticity shows as second < first.
* mean ± sample std (ddof 1) over seeds; "n" seeds counted per cell.

Plots (over env steps of the stream, mean over seeds, shaded ± std): the training
episode return (``charts/episode_return``), the dormant-unit ratio
(``plasticity/dormant_ratio/all``) and the parameter norm
(``plasticity/weight_norm/all``), with the task switches marked.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from normrl.analysis.curves import plot_curves, read_scalars

RETURN_TAG = "charts/episode_return"
#: Text after this line of an existing report is kept when the report is rewritten.
NOTES_MARKER = "<!-- notes: text below this line is kept when the report is regenerated -->"
DORMANT_TAG = "plasticity/dormant_ratio/all"
WEIGHT_NORM_TAG = "plasticity/weight_norm/all"


def write_keeping_notes(out_md: Path, text: str) -> None:
    """Write ``text`` + :data:`NOTES_MARKER` to ``out_md``, keeping what an existing
    ``out_md`` holds below the marker (a hand-written discussion survives regeneration)."""
    out_md = Path(out_md)
    old = out_md.read_text() if out_md.is_file() else ""
    notes = old.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in old else ""
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(text + NOTES_MARKER + (notes if notes else "\n"))


def visit_returns(continual: dict) -> dict[str, list[float]]:
    """``{game: [return after visit 1, after visit 2, ...]}`` from a ``continual``
    result dict (``task_names``, ``visit_tasks``, ``returns``)."""
    names = continual["task_names"]
    out: dict[str, list[float]] = {n: [] for n in names}
    for row, task in enumerate(continual["visit_tasks"]):
        value = continual["returns"][row][task]
        out[names[task]].append(float("nan") if value is None else float(value))
    return out


def visit_training_returns(points: list[tuple[int, float]], continual: dict, tail: float = 0.5) -> dict[str, list[float]]:
    """``{game: [training return per visit]}``: the mean of the logged training episode
    returns (``(step, value)`` points of ``charts/episode_return``) within the last
    ``tail`` fraction of each visit; a visit spans ``(eval_steps[k-1], eval_steps[k]]``
    (``eval_steps`` from the ``continual`` result; 0 before the first). NaN for a visit
    without points."""
    names = continual["task_names"]
    out: dict[str, list[float]] = {n: [] for n in names}
    start = 0
    for task, end in zip(continual["visit_tasks"], continual["eval_steps"]):
        lo = end - tail * (end - start)
        vals = [v for step, v in points if lo < step <= end]
        out[names[task]].append(sum(vals) / len(vals) if vals else float("nan"))
        start = end
    return out


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """Mean, sample std (ddof 1; 0 for one value) and count of the finite values."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return float("nan"), float("nan"), 0
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd, len(xs)


def aggregate(runs: dict[str, list[dict]]) -> dict[str, dict[str, dict[int, tuple[float, float, int]]]]:
    """``{method: [{game: [value per visit]} per seed]}`` -> ``{method: {game: {visit:
    (mean, std, n)}}}`` (visit 1-based)."""
    table: dict = {}
    for method, results in runs.items():
        per_game: dict[str, dict[int, list[float]]] = {}
        for res in results:
            for game, values in res.items():
                for k, v in enumerate(values, start=1):
                    per_game.setdefault(game, {}).setdefault(k, []).append(v)
        table[method] = {g: {k: mean_std(v) for k, v in visits.items()} for g, visits in per_game.items()}
    return table


def _fmt(cell: tuple[float, float, int] | None) -> str:
    if cell is None or cell[2] == 0:
        return "–"
    m, sd, n = cell
    return f"{m:.2f} ± {sd:.2f}"


def format_table(table: dict, train_table: dict | None = None) -> str:
    """Markdown table: one row per (game, method): evaluation return after the first
    and second visit and their change; with ``train_table`` also the training return
    (last half of each visit) of the first and second visit and their change."""
    games: list[str] = []
    for per_game in table.values():
        for g in per_game:
            if g not in games:
                games.append(g)
    head = "| game | method | eval, first visit | eval, second visit | eval: second − first |"
    rule = "|---|---|---|---|---|"
    if train_table is not None:
        head += " train, first visit | train, second visit | train: second − first |"
        rule += "---|---|---|"
    lines = [head, rule]

    def cells(visits: dict) -> list[str]:
        first, second = visits.get(1), visits.get(2)
        delta = "–"
        if first and second and first[2] and second[2]:
            delta = f"{second[0] - first[0]:+.2f}"
        return [_fmt(first), _fmt(second), delta]

    for g in games:
        for method, per_game in table.items():
            row = [g, method, *cells(per_game.get(g, {}))]
            if train_table is not None:
                row += cells(train_table.get(method, {}).get(g, {}))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def load_runs(root: str | Path, norms, seeds) -> dict[str, list[tuple[int, Path, dict]]]:
    """``{norm: [(seed, run dir, summary dict), ...]}`` for runs under ``root/<norm>/seed<S>``
    whose ``summary.json`` exists."""
    out: dict[str, list] = {}
    for norm in norms:
        for seed in seeds:
            d = Path(root) / norm / f"seed{seed}"
            p = d / "summary.json"
            if p.is_file():
                out.setdefault(norm, []).append((seed, d, json.loads(p.read_text())))
    return out


def write_report(root: str | Path, out_md: str | Path, *, norms, seeds, title: str, setup: str,
                 total_steps: int, switch_steps: list[int], png_prefix: str = "sequential_minatar",
                 expected_visits: int | None = None, segment_labels: list[str] | None = None) -> dict:
    """Aggregate the runs under ``root`` and write ``out_md`` (table + setup + the
    three plots, saved beside it as ``<png_prefix>_{returns,dormant,weight_norm}.png``).
    Returns ``{"table": ..., "runs": {norm: [seeds]}, "plots": [paths]}``."""
    runs = load_runs(root, norms, seeds)
    table = aggregate({n: [visit_returns(s["continual"]) for _, _, s in rs] for n, rs in runs.items()})
    out_md = Path(out_md)
    plots = []
    specs = ((RETURN_TAG, "returns", "training episode return"),
             (DORMANT_TAG, "dormant", "dormant-unit ratio (τ=0.025)"),
             (WEIGHT_NORM_TAG, "weight_norm", "parameter norm ‖W_all‖"))
    scalars = {n: [read_scalars(d, tuple(t for t, _, _ in specs)) for _, d, _ in rs] for n, rs in runs.items()}
    train_table = aggregate({n: [visit_training_returns(sc[RETURN_TAG], s["continual"])
                                 for sc, (_, _, s) in zip(scalars[n], rs)] for n, rs in runs.items()})
    for tag, suffix, label in specs:
        curves = {n: [sc[tag] for sc in per_seed] for n, per_seed in scalars.items()}
        path = out_md.parent / f"{png_prefix}_{suffix}.png"
        plot_curves(curves, path, title=f"{label} over the stream", ylabel=label,
                    total_steps=total_steps, switch_steps=switch_steps, segment_labels=segment_labels)
        plots.append(path)
    seeds_done = {n: [s for s, _, _ in rs] for n, rs in runs.items()}
    visits = {n: {s: len(sm["continual"]["visit_tasks"]) for s, _, sm in rs} for n, rs in runs.items()}
    expected = max((v for per in visits.values() for v in per.values()), default=0)
    if expected_visits is not None:
        expected = expected_visits
    listing = "; ".join(f"{n}: seeds " + ", ".join(f"{s}" + ("" if v >= expected else f" ({v}/{expected} visits, unfinished)")
                                                    for s, v in per.items()) for n, per in visits.items())
    body = [f"# {title}", "", setup, "", "Runs included: " + listing + ".", "",
            "Per game and method, mean ± std over seeds: *eval* = greedy evaluation return of the game "
            "right after training on it (first / second visit); *train* = mean training episode return "
            "(sampled actions) over the last half of that visit.", "", format_table(table, train_table), ""]
    body += [f"![{p.stem}]({p.name})" for p in plots]
    write_keeping_notes(out_md, "\n".join(body) + "\n\n")
    return {"table": table, "train_table": train_table, "runs": seeds_done, "plots": plots}
