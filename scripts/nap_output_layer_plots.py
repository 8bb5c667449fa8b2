"""Plots and the stationary-task table of docs/results/nap_output_layer.md, from the
result files of ``scripts/nap_output_layer_study.py`` (nothing is trained here).

    python scripts/nap_output_layer_plots.py --continual all30.json \\
        --stationary stationary.json stationary2.json --out docs/results

``--continual``: a 30-task result file (``--merge`` several with the study script's
``--no-run`` first). Writes ``nap_output_layer_accuracy.png`` (end-of-task training
accuracy per task, mean over seeds with a min-max band) and
``nap_output_layer_head_norm.png`` (output-layer weight norm per task) for
``--arms``. ``--stationary``: single-task files (``--tasks 1 --curve-every 30``);
writes ``nap_output_layer_stationary.png`` (accuracy every 30 epochs per seed) and
prints a markdown table per run: final accuracy, epoch of the first 1.00, mean of the
curve, drops below 0.5 after reaching 1.00, final head norm / logit RMS / ELRs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_ARMS = "fresh,plain,layernorm,nap,nap_head_project"
LABELS = {
    "fresh": "fresh plain net per task (oracle)",
    "plain": "plain",
    "layernorm": "LayerNorm",
    "nap": "NaP, head free (old default)",
    "nap_head_project": "NaP, head projected (new default)",
}


def _runs(paths: list[str]) -> dict:
    """arm -> seed -> run record, later files overriding earlier ones."""
    out: dict = {}
    for path in paths:
        for arm, by_seed in json.loads(Path(path).read_text())["results"].items():
            out.setdefault(arm, {}).update(by_seed)
    return out


def _band_plot(ax, runs: dict, arms: list[str], key: str) -> None:
    import numpy as np

    for arm in arms:
        seeds = runs.get(arm, {})
        if not seeds:
            continue
        curves = np.array([[t[key] for t in r["per_task"]] for r in seeds.values()])
        x = np.arange(1, curves.shape[1] + 1)
        (line,) = ax.plot(x, curves.mean(0), label=f"{LABELS.get(arm, arm)} ({len(seeds)} seeds)")
        ax.fill_between(x, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("task")
    ax.grid(alpha=0.3)


def continual_plots(paths: list[str], arms: list[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _runs(paths)
    written = []
    for key, ylabel, name in (("acc", "end-of-task training accuracy", "accuracy"), ("head_norm", "output-layer ‖W‖", "head_norm")):
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        _band_plot(ax, runs, arms, key)
        ax.set_ylabel(ylabel)
        ax.set_title(f"continual random-label digits, 3x256 MLP, Adam 1e-3 ({name.replace('_', ' ')}; band = min-max over seeds)", fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"nap_output_layer_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def stationary_table(paths: list[str], every: int) -> tuple[str, dict]:
    runs = _runs(paths)
    lines = ["| arm | seed | final acc | first epoch at 1.00 | mean of curve | drops < 0.5 after 1.00 (epoch) | head ‖W‖ | logit RMS | confidence | hidden ELR | head ELR | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    curves = {}
    for arm in sorted(runs):
        for seed in sorted(runs[arm], key=int):
            r = runs[arm][seed]
            t = r["per_task"][0]
            c = t.get("curve", [])
            curves[(arm, seed)] = c
            first = next((i for i, v in enumerate(c) if v >= 0.999), None)
            drops = [(i + 1) * every for i, v in enumerate(c) if first is not None and i > first and v < 0.5]
            lines.append(
                f"| {arm} | {seed} | {t['acc']:.3f} | {(first + 1) * every if first is not None else '—'} | "
                f"{sum(c) / len(c):.3f} | {', '.join(map(str, drops)) or 'none'} | {t['head_norm']:.2f} | {t['logit_rms']:.2f} | "
                f"{t['confidence']:.2f} | {t['hidden_elr']:.1e} | {t['head_elr']:.1e} | {r['wall_s']:.0f} |")
    return "\n".join(lines), curves


def stationary_plot(curves: dict, every: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    styles = {"nap": "-", "nap_head_project": "--"}
    colors = ["C0", "C1", "C2"]
    for (arm, seed), c in sorted(curves.items()):
        ax.plot([(i + 1) * every for i in range(len(c))], c, styles.get(arm, ":"), color=colors[int(seed) % 3],
                label=f"{LABELS.get(arm, arm)}, seed {seed}")
    ax.set_xlabel("epoch (one task, 900 epochs = 30x a task's budget)")
    ax.set_ylabel("training accuracy")
    ax.set_title("one random-label task trained 30x longer: both heads memorize, both later collapse", fontsize=8)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "nap_output_layer_stationary.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--continual", nargs="*", default=[], help="30-task result files")
    p.add_argument("--arms", default=DEFAULT_ARMS, help=f"arms of the continual plots [{DEFAULT_ARMS}]")
    p.add_argument("--stationary", nargs="*", default=[], help="single-task result files (with curves)")
    p.add_argument("--curve-every", type=int, default=30, help="epochs between curve points [30]")
    p.add_argument("--out", default=".", help="folder of the PNGs")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.continual:
        for path in continual_plots(a.continual, a.arms.split(","), out):
            print(f"wrote {path}")
    if a.stationary:
        table, curves = stationary_table(a.stationary, a.curve_every)
        print(table)
        print(f"wrote {stationary_plot(curves, a.curve_every, out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
