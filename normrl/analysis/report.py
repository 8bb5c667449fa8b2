"""``normrl report``: aggregate every run directory under a folder into ``report.md``,
``report.json`` and PNG plots, from the run directories alone (config.json,
summary.json, TensorBoard events) -- a sweep's LOGDIR, or any folder of runs.

Grouping. Runs are read with :func:`normrl.analysis.run_dirs.find_runs`. Single-env runs
form one section, each stream's continual runs another. Within a section, an *arm* is
everything that was set except the seed (labelled by the settings that differ between
runs of one task, :func:`~normrl.analysis.run_dirs.arm_labels`) and a *task* is the env
id (single-env runs) or one task of the stream (continual runs).

Scores (one per run and task):

* single-env runs: the mean return of the last 100 training episodes
  (``summary.json``'s ``mean_return_last_100``), or, with ``score_tag``, the mean of the
  last ``score_window`` logged values of that TensorBoard scalar;
* continual runs: the greedy evaluation return on each task after the last visit (the
  return matrix's last row). Forgetting (:mod:`normrl.analysis.return_matrix`) is
  reported beside it.

Aggregation (Agarwal et al. 2021, arXiv 2108.13264, with :mod:`normrl.analysis.stats`):
per task and arm, the interquartile mean over seeds with a 95% bootstrap interval; per
arm over tasks, IQM / mean / median with 95% stratified-bootstrap intervals (runs
resampled within each task), on scores min-max normalized per task over every run of
that task in the section (0 = the worst run, 1 = the best), since the raw returns of
different games share no scale; and the probability that the arm beats the baseline arm
(the first arm, ``none`` norm first) on a task, with its interval. Percentile intervals,
``reps`` resamples (50,000, rliable's default), seeded, so the report is reproducible.

Only runs whose summary says ``finished`` or ``diverged`` are aggregated (a diverged run
counts with the score it had reached, and is flagged); stopped runs and runs without a
summary are listed as excluded.

Plots (``<root>/report_figures/``): learning curves (``charts/episode_return``) and the
plasticity metrics present in the logs (dormant ratio, weight norm, effective rank,
effective learning rate), mean over seeds per arm with a ± std band, one plot per task
(single-env) or per stream (with the task switches marked).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from normrl.analysis.curves import plot_curves, read_scalars
from normrl.analysis.return_matrix import mean_matrix, task_forgetting
from normrl.analysis.run_dirs import ENV, RunDir, arm_labels, find_runs, summary_score

RETURN_TAG = "charts/episode_return"
PLASTICITY_TAGS = ("plasticity/dormant_ratio/all", "plasticity/weight_norm/all",
                   "plasticity/effective_rank/all", "plasticity/effective_lr/all")
FIGURES_DIR = "report_figures"
INCLUDED = ("finished", "diverged")
DEFAULT_REPS = 50_000


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-.") or "x"


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _cell(iv: dict | None, digits: int = 2) -> str:
    if iv is None:
        return "–"
    return f"{_fmt(iv['point'], digits)} [{_fmt(iv['low'], digits)}, {_fmt(iv['high'], digits)}]"


def run_scores(run: RunDir, scalars: dict[str, list] | None = None, *, score_tag: str | None = None,
               score_window: int = 100) -> dict[str, float]:
    """``{task: score}`` of one run (see the module docstring); empty when it has none.
    ``scalars`` holds the run's TensorBoard series (needed with ``score_tag``)."""
    summary = run.summary or {}
    if run.kind == ENV:
        if score_tag is not None:
            points = (scalars or {}).get(score_tag) or []
            values = [v for _, v in points[-score_window:]]
            return {run.task: sum(values) / len(values)} if values else {}
        score = summary_score(summary)
        return {} if score is None or not math.isfinite(score) else {run.task: float(score)}
    continual = summary.get("continual") or {}
    rows = continual.get("returns") or []
    if not rows:
        return {}
    return {name: float(v) for name, v in zip(continual["task_names"], rows[-1]) if v is not None}


def _order_arms(labels: dict[Path, str], runs: list[RunDir]) -> list[str]:
    """Arm labels: the arms with norm ``none`` first, then in order of first appearance."""
    seen: list[str] = []
    has_none: set[str] = set()
    for run in runs:
        label = labels[run.path]
        if label not in seen:
            seen.append(label)
        if run.settings.get("norm", "none") == "none":
            has_none.add(label)
    return sorted(seen, key=lambda a: (a not in has_none, seen.index(a)))


def _minmax(scores: dict[str, dict[str, list[float]]]) -> dict[str, tuple[float, float]]:
    """Per task, the lowest and highest score over every arm's runs."""
    bounds: dict[str, tuple[float, float]] = {}
    for per_task in scores.values():
        for task, values in per_task.items():
            lo, hi = bounds.get(task, (math.inf, -math.inf))
            bounds[task] = (min(lo, *values), max(hi, *values))
    return bounds


def _section(title: str, runs: list[RunDir], scalars: dict[Path, dict], *, score_tag, score_window, reps, seed,
             figures: Path, tags: tuple[str, ...]) -> dict[str, Any]:
    """Numbers and plots of one section (single-env runs, or one stream)."""
    from normrl.analysis.stats import bootstrap_intervals, probability_of_improvement_interval

    labels = arm_labels(runs)
    arms = _order_arms(labels, runs)
    included = [r for r in runs if r.status in INCLUDED]
    scores: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, dict[str, list[int]]] = {}
    tasks: list[str] = []
    for run in included:
        label = labels[run.path]
        for task, value in run_scores(run, scalars.get(run.path), score_tag=score_tag,
                                      score_window=score_window).items():
            if task not in tasks:
                tasks.append(task)
            scores.setdefault(label, {}).setdefault(task, []).append(value)
            seeds.setdefault(label, {}).setdefault(task, []).append(run.seed)
    per_task: dict[str, dict[str, dict]] = {}
    for arm in arms:
        for task in tasks:
            values = scores.get(arm, {}).get(task)
            if not values:
                continue
            res = bootstrap_intervals({task: values}, metrics=("iqm", "mean"), reps=reps, seed=seed)
            per_task.setdefault(arm, {})[task] = {
                "n": len(values), "seeds": seeds[arm][task], "scores": values,
                "iqm": res.aggregate["iqm"].to_dict(), "mean": res.aggregate["mean"].to_dict()}
    bounds = _minmax(scores)
    aggregate: dict[str, dict] = {}
    for arm in arms:
        if arm not in scores:
            continue
        if len(tasks) > 1:
            norm = {}
            for task, values in scores[arm].items():
                lo, hi = bounds[task]
                norm[task] = [(v - lo) / (hi - lo) if hi > lo else 0.0 for v in values]
        else:
            norm = dict(scores[arm])
        res = bootstrap_intervals(norm, metrics=("iqm", "mean", "median"), reps=reps, seed=seed)
        aggregate[arm] = {"tasks": len(norm), "runs": sum(len(v) for v in norm.values()),
                          **{m: iv.to_dict() for m, iv in res.aggregate.items()}}
    baseline = next((a for a in arms if a in scores), None)
    improvement: dict[str, dict] = {}
    for arm in arms:
        if arm == baseline or arm not in scores:
            continue
        common = [t for t in tasks if t in scores[arm] and t in scores[baseline]]
        if common:
            iv = probability_of_improvement_interval({t: scores[arm][t] for t in common},
                                                     {t: scores[baseline][t] for t in common}, reps=reps, seed=seed)
            improvement[arm] = {"tasks": len(common), **iv.to_dict()}
    section: dict[str, Any] = {
        "title": title, "kind": runs[0].kind, "arms": arms, "tasks": tasks, "baseline": baseline,
        "normalized": len(tasks) > 1, "per_task": per_task, "aggregate": aggregate, "improvement": improvement,
        "diverged": {}, "plots": {}}
    for run in included:
        if run.status == "diverged":
            section["diverged"].setdefault(labels[run.path], []).append(run.name)
    if runs[0].kind != ENV:
        section["matrices"] = _matrices(included, labels, arms)
    section["plots"] = _plots(included, labels, arms, scalars, figures, tags)
    return section


def _matrices(runs: list[RunDir], labels: dict[Path, str], arms: list[str]) -> dict[str, dict]:
    """Per arm: the seeds' mean return matrix and per-task forgetting (finished runs of
    the most common shape)."""
    out = {}
    for arm in arms:
        group = [r for r in runs if labels[r.path] == arm and r.status == "finished"]
        if not group:
            continue
        mats = [r.summary["continual"]["returns"] for r in group]
        shapes = [(len(m), len(m[0]) if m else 0) for m in mats]
        common = max(set(shapes), key=shapes.count)
        group = [r for r, s in zip(group, shapes) if s == common]
        cont = group[0].summary["continual"]
        forgetting = [task_forgetting(r.summary["continual"]) for r in group]
        per_task = []
        for k in range(len(cont["task_names"])):
            vals = [f[k] for f in forgetting if f[k] is not None]
            per_task.append(sum(vals) / len(vals) if vals else None)
        defined = [v for v in per_task if v is not None]
        out[arm] = {"n": len(group), "task_names": cont["task_names"], "visit_tasks": cont["visit_tasks"],
                    "mean": mean_matrix([r.summary["continual"]["returns"] for r in group]),
                    "forgetting": per_task, "mean_forgetting": sum(defined) / len(defined) if defined else None}
    return out


def _plots(included, labels, arms, scalars, figures: Path, tags) -> dict[str, list[str]]:
    """Learning curves and plasticity curves: one PNG per task (single-env) or per stream."""
    plots: dict[str, list[str]] = {}
    groups: dict[str, list[RunDir]] = {}
    for run in included:
        groups.setdefault(run.task, []).append(run)
    for task, group in groups.items():
        switch_steps, segment_labels = [], None
        if group[0].kind != ENV:
            cont = next((r.summary["continual"] for r in group if r.summary["continual"].get("completed")),
                        group[0].summary["continual"])
            switch_steps = list(cont["eval_steps"][:-1])
            segment_labels = [cont["task_names"][t] for t in cont["visit_tasks"]]
        for tag in tags:
            curves = {arm: [scalars.get(r.path, {}).get(tag, []) for r in group if labels[r.path] == arm]
                      for arm in arms}
            curves = {arm: series for arm, series in curves.items() if any(series)}
            if not curves:
                continue
            total = max([r.total_steps or 0 for r in group] + [p[-1][0] for s in curves.values() for p in s if p])
            kind = "env" if group[0].kind == ENV else "stream"
            path = figures / f"{kind}_{_slug(task)}_{_slug(tag.split('/', 1)[-1])}.png"
            label = tag if tag != RETURN_TAG else "training episode return"
            plot_curves(curves, path, title=f"{task}: {label}", ylabel=label, total_steps=total,
                        switch_steps=switch_steps, segment_labels=segment_labels)
            plots.setdefault(tag, []).append(str(path))
    return plots


def build_report(root: str | Path, *, score_tag: str | None = None, score_window: int = 100,
                 reps: int = DEFAULT_REPS, seed: int = 0, tags: tuple[str, ...] | None = None,
                 plots: bool = True) -> dict[str, Any]:
    """The report's numbers (what ``report.json`` holds) for the runs under ``root``;
    with ``plots`` also writes the PNGs into ``root/report_figures/``."""
    if score_window < 1:
        raise ValueError(f"score_window must be >= 1, got {score_window}")
    root = Path(root)
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no run directories (config.json of normrl train / continual runs) under {root}")
    tags = tuple(tags) if tags is not None else (RETURN_TAG, *PLASTICITY_TAGS)
    wanted = tuple(dict.fromkeys(([score_tag] if score_tag else []) + (list(tags) if plots else [])))
    scalars = {r.path: read_scalars(r.path, wanted) for r in runs if r.status in INCLUDED} if wanted else {}
    sections: dict[tuple[str, str], list[RunDir]] = {}
    for run in runs:
        key = ("Single-environment runs", "") if run.kind == ENV else (f"Continual runs: {run.task}", run.task)
        sections.setdefault(key, []).append(run)
    figures = root / FIGURES_DIR
    out_sections = []
    for (title, _), group in sections.items():
        if not any(r.status in INCLUDED for r in group):
            continue
        out_sections.append(_section(title, group, scalars, score_tag=score_tag, score_window=score_window,
                                     reps=reps, seed=seed, figures=figures, tags=tags if plots else ()))
    runs_out = [{"run": r.name, "task": r.task, "seed": r.seed, "status": r.status, "algo": r.algo,
                 "score": summary_score(r.summary) if r.summary else None} for r in runs]
    kinds = {r.kind for r in runs}
    score_parts = []
    if ENV in kinds and score_tag is not None:
        score_parts.append(f"single-environment runs: mean of the last {score_window} logged values of the "
                           f"TensorBoard scalar `{score_tag}`")
    elif ENV in kinds:
        score_parts.append("single-environment runs: mean return of the last 100 training episodes "
                           "(summary.json `mean_return_last_100`)")
    if kinds - {ENV}:
        score_parts.append("continual runs: greedy evaluation return on each task after the last visit (the return "
                           "matrix's last row)")
    score_text = "; ".join(score_parts)
    return {"root": str(root), "score": score_text, "reps": reps, "seed": seed, "confidence": 0.95,
            "sections": out_sections, "runs": runs_out,
            "excluded": [r for r in runs_out if r["status"] not in INCLUDED]}


def format_report(data: dict[str, Any], root: Path, out: Path | None = None) -> str:
    """``report.md``'s text from :func:`build_report`'s numbers (image links relative
    to ``out``, the folder report.md goes to [``root``])."""
    out = Path(out) if out is not None else Path(root)
    n_runs = len(data["runs"])
    lines = [f"# Report: {root}", "",
             f"{n_runs} run directories; generated by `normrl report {root}` from the run directories alone.", "",
             f"**Score**: {data['score']}. ",
             f"**Intervals**: 95% stratified-bootstrap percentile intervals ({data['reps']:,} resamples, seed "
             f"{data['seed']}; Agarwal et al. 2021, arXiv 2108.13264). IQM = interquartile mean (25% trimmed mean) "
             "of the runs' scores.", ""]
    for sec in data["sections"]:
        lines += [f"## {sec['title']}", ""]
        arms = [a for a in sec["arms"] if a in sec["per_task"]]
        lines += ["### Per task: IQM over seeds [95% CI] (runs)", "",
                  "| task | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
        for task in sec["tasks"]:
            cells = []
            for arm in arms:
                cell = sec["per_task"].get(arm, {}).get(task)
                cells.append("–" if cell is None else f"{_cell(cell['iqm'])} ({cell['n']})")
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
        lines.append("")
        if sec["normalized"]:
            lines += ["### Aggregate over tasks [95% CI]", "",
                      "Scores min-max normalized per task over every run of the task in this section (0 = the worst "
                      "run, 1 = the best). P(arm > baseline): probability that a run of the arm beats a run of the "
                      "baseline on the same task, averaged over tasks.", "",
                      f"| arm | tasks | runs | IQM | mean | median | P(arm > {sec['baseline']}) |",
                      "|---|---|---|---|---|---|---|"]
        else:
            lines += ["### Over seeds [95% CI]", "",
                      "P(arm > baseline): probability that a run of the arm beats a run of the baseline.", "",
                      f"| arm | runs | IQM | mean | P(arm > {sec['baseline']}) |", "|---|---|---|---|---|"]
        for arm in arms:
            agg = sec["aggregate"].get(arm)
            if agg is None:
                continue
            imp = sec["improvement"].get(arm)
            imp = "–" if imp is None else _cell(imp, 2)
            if sec["normalized"]:
                lines.append(f"| {arm} | {agg['tasks']} | {agg['runs']} | {_cell(agg['iqm'], 3)} | "
                             f"{_cell(agg['mean'], 3)} | {_cell(agg['median'], 3)} | {imp} |")
            else:
                lines.append(f"| {arm} | {agg['runs']} | {_cell(agg['iqm'])} | {_cell(agg['mean'])} | {imp} |")
        lines.append("")
        if sec["diverged"]:
            lines += ["Diverged runs (counted with the score they had reached): " + "; ".join(
                f"{arm}: {', '.join(names)}" for arm, names in sec["diverged"].items()), ""]
        for arm, mat in (sec.get("matrices") or {}).items():
            names = mat["task_names"]
            lines += [f"### Return matrix, {arm} (mean over {mat['n']} seeds)", "",
                      "| trained \\ eval | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            for v, (task, row) in enumerate(zip(mat["visit_tasks"], mat["mean"])):
                lines.append(f"| {v + 1}: {names[task]} | " + " | ".join(_fmt(x) for x in row) + " |")
            lines.append("| **forgetting** | " + " | ".join(_fmt(x) for x in mat["forgetting"]) + " |")
            lines += ["", f"Mean forgetting over tasks: {_fmt(mat['mean_forgetting'])} (best return on a task from its "
                      "first visit up to the second-to-last row, minus the final row's; mean over seeds).", ""]
        for tag, paths in sec["plots"].items():
            heading = "Learning curves" if tag == RETURN_TAG else f"`{tag}`"
            lines += [f"### {heading} (mean over seeds, ± std band)", ""]
            lines += [f"![{Path(p).stem}]({Path(os.path.relpath(p, out)).as_posix()})" for p in paths]
            lines.append("")
    lines += ["## Runs", "", "| run | task | seed | status | score |", "|---|---|---|---|---|"]
    for r in data["runs"]:
        lines.append(f"| {r['run']} | {r['task']} | {r['seed']} | {r['status']} | {_fmt(r['score'])} |")
    if data["excluded"]:
        lines += ["", f"Excluded from the tables (not finished): {len(data['excluded'])} runs: "
                  + ", ".join(f"{r['run']} ({r['status']})" for r in data["excluded"]) + "."]
    return "\n".join(lines) + "\n"


def write_report(root: str | Path, *, out: str | Path | None = None, **kwargs) -> dict[str, Any]:
    """Build the report of the runs under ``root`` (:func:`build_report` keywords) and
    write ``report.md`` and ``report.json`` into ``out`` [``root``] (PNGs into
    ``root/report_figures/``). Returns the numbers with ``"path"`` (report.md) added."""
    from normrl.utils.run_dir import write_json

    root = Path(root)
    data = build_report(root, **kwargs)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text(format_report(data, root, out))
    write_json(out / "report.json", data)
    data["path"] = path
    return data
