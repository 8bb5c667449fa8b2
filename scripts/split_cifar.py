"""Split CIFAR online continual learning: a comparison of norms over seeds (one run is
``normrl split-cifar ...``, docs/split_cifar.md).

Every norm x seed with one method; writes a Markdown table and JSON::

    python scripts/split_cifar.py --compare                       # digits, offline, minutes on 1 core
    python scripts/split_cifar.py --compare --dataset cifar10 --data-dir data --buffer 500
    python scripts/split_cifar.py --compare --dataset cifar100 --data-dir data --buffer 2000

The default norms are BatchNorm, LayerNorm (over channels at each position), GroupNorm,
Continual Normalization, AdaB²N and NaP (LayerNorm + weight projection). The table
reports mean ± std over seeds of the final average accuracy (class- and
task-incremental) and the class-incremental average forgetting.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

DEFAULT_NORMS = ("batchnorm", "layernorm", "groupnorm", "continual_norm", "adab2n", "nap")
LABELS = {"batchnorm": "BN", "layernorm": "LN", "groupnorm": "GN", "continual_norm": "CN", "adab2n": "AdaB²N", "nap": "NaP"}


def parse_compare(argv):
    from normrl.commands._exit import CommandParser

    p = CommandParser(prog="split_cifar.py", description="compare norms on a split stream over seeds")
    p.add_argument("--compare", action="store_true", help="accepted for compatibility: the script only compares")
    p.add_argument("--dataset", default="digits", choices=("digits", "cifar10", "cifar100"), help="[digits]")
    p.add_argument("--data-dir", default=None, help="CIFAR folder (not needed for digits)")
    p.add_argument("--download", action="store_true")
    p.add_argument("--n-tasks", type=int, default=None, help="[5 digits/cifar10, 10 cifar100]")
    p.add_argument("--norms", default=",".join(DEFAULT_NORMS), help="comma-separated registry names")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 [3]")
    p.add_argument("--method", default="er_ace", choices=("er", "er_ace", "derpp"), help="[er_ace]")
    p.add_argument("--buffer", type=int, default=None, help="[100 for digits (500 would hold 40%% of it), 500 cifar10, 2000 cifar100]")
    p.add_argument("--nf", type=int, default=20, help="ResNet-18 width [20]")
    p.add_argument("--epochs", type=int, default=1, help="[1]")
    p.add_argument("--lr", type=float, default=0.03, help="SGD learning rate [0.03, the protocol's]")
    p.add_argument("--adab2n-lambda", type=float, default=1.0, help="[1.0]")
    p.add_argument("--kappa", type=float, default=None, help="AdaB²N kappa [layer default]")
    p.add_argument("--device", default=None, help="[cuda if available, else cpu]")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 keeps torch's default [1]")
    p.add_argument("--out", default=None, help="Markdown table [docs/results/split_cifar_<dataset>.md]")
    p.add_argument("--json", default=None, help="raw summaries [<out>.json]")
    p.add_argument("--from-json", default=None, help="only re-render the table from a saved JSON (no training)")
    return p.parse_args(argv)


def compare(args) -> int:
    from normrl.continual.online import OnlineCLConfig, train_online
    from normrl.data import load_split
    from normrl.runs import resolve_device
    from normrl.runs.device import set_threads
    from normrl.utils.errors import UserError

    if args.from_json:
        return rerender(args)
    set_threads(args.threads)
    device = resolve_device(args.device or "auto")
    data = load_split(args.dataset, n_tasks=args.n_tasks, root=args.data_dir, download=args.download, device=device)
    buffer = args.buffer or {"digits": 100, "cifar10": 500, "cifar100": 2000}[args.dataset]
    norms = [n.strip() for n in args.norms.split(",") if n.strip()]
    if not norms:
        raise UserError(f"--norms names no norm: {args.norms!r}")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    results: dict[str, list[dict]] = {}
    for norm in norms:
        results[norm] = []
        for seed in range(args.seeds):
            kw = {"kappa": args.kappa} if (args.kappa is not None and norm == "adab2n") else {}
            cfg = OnlineCLConfig(method=args.method, norm=norm, buffer_size=buffer, nf=args.nf, epochs=args.epochs, lr=args.lr, adab2n_lambda=args.adab2n_lambda, norm_kwargs=kw, seed=seed)
            summary = train_online(data, cfg)
            results[norm].append(summary)
            print(f"{norm:>15} seed {seed}: class-IL {summary['class_il']['final_accuracy']:.3f} task-IL {summary['task_il']['final_accuracy']:.3f} ({summary['wall_seconds']:.1f}s)", flush=True)
    out = Path(args.out or f"docs/results/split_cifar_{args.dataset}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(args.json or out.with_suffix(".json")).write_text(json.dumps({"args": vars(args), "device": str(device), "results": results}, indent=1))
    write_keeping_notes(out, render_table(args, data, buffer, device, results))
    print(f"wrote {out}")
    return 0


def write_keeping_notes(out: Path, text: str) -> None:
    """Write ``text`` to ``out``, keeping an existing file's hand-written notes (the text
    after :data:`normrl.analysis.results.NOTES_MARKER`)."""
    from normrl.analysis.results import NOTES_MARKER

    notes = ""
    if out.is_file() and NOTES_MARKER in out.read_text():
        notes = NOTES_MARKER + out.read_text().split(NOTES_MARKER, 1)[1]
    out.write_text(text + ("\n" + notes if notes else ""))


def rerender(args) -> int:
    """Rewrite the Markdown table from a JSON written by an earlier ``--compare``."""
    from normrl.data.split import DEFAULT_TASKS

    saved = json.loads(Path(args.from_json).read_text())
    old = argparse.Namespace(**saved["args"])
    old.from_json, old.out = args.from_json, args.out or old.out
    name = old.dataset
    n_tasks = old.n_tasks or DEFAULT_TASKS[name]
    classes = {"digits": 10, "cifar10": 10, "cifar100": 100}[name]
    data = argparse.Namespace(name=name, n_tasks=n_tasks, classes_per_task=classes // n_tasks, num_classes=classes)
    buffer = saved["results"][next(iter(saved["results"]))][0]["config"]["buffer_size"]
    out = Path(old.out or f"docs/results/split_cifar_{name}.md")
    write_keeping_notes(out, render_table(old, data, buffer, saved["device"], saved["results"]))
    print(f"wrote {out}")
    return 0


def _stat(values: list[float]) -> str:
    mean = statistics.fmean(values) * 100
    std = statistics.stdev(values) * 100 if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def render_table(args, data, buffer, device, results) -> str:
    lines = [
        f"# Split {data.name}: norms compared (online, {args.method}, buffer {buffer})",
        "",
        f"Generated by `python scripts/split_cifar.py --compare --dataset {args.dataset}` on {time.strftime('%Y-%m-%d')} "
        f"({device}, {args.threads} CPU thread(s), torch {torch.__version__}).",
        "",
        f"Protocol: {data.n_tasks} tasks x {data.classes_per_task} classes, natural class order, one pass, stream batch 10 + "
        f"replay 10 from a reservoir buffer of {buffer}, SGD lr {getattr(args, 'lr', 0.03)}, {getattr(args, 'epochs', 1)} epoch(s), reduced ResNet-18 (nf={args.nf}), "
        f"AdaB²N λ={args.adab2n_lambda}{'' if args.kappa is None else f', κ={args.kappa}'}. "
        f"Seeds 0..{args.seeds - 1} (model init, stream order, buffer); mean ± std over seeds, in %.",
        "",
        "| norm | class-IL final acc | class-IL forgetting | task-IL final acc |",
        "|---|---|---|---|",
    ]
    for norm, runs in results.items():
        cil = [r["class_il"]["final_accuracy"] for r in runs]
        fgt = [r["class_il"]["forgetting"] for r in runs]
        til = [r["task_il"]["final_accuracy"] for r in runs]
        lines.append(f"| {LABELS.get(norm, norm)} (`{norm}`) | {_stat(cil)} | {_stat(fgt)} | {_stat(til)} |")
    lines += [
        "",
        f"Chance: {100 / data.num_classes:.0f}% class-incremental, {100 / data.classes_per_task:.0f}% task-incremental. "
        "Per-run wall times are in the JSON beside this file (not a benchmark: measured on a shared machine).",
        "",
    ]
    if data.name == "digits":
        lines += [
            "The digits split is tiny (about 250 training images, i.e. about 25 SGD steps, per task): it exercises "
            "the Split CIFAR code path offline and ranks norms by how fast they learn in a very short online "
            "budget. It is not a replication of the CIFAR numbers; run the CIFAR commands in docs/split_cifar.md for those. "
            "Runs are this short and chaotic: a change of AdaB²N's code that only alters float rounding moved its "
            "class-IL mean by about 5 points, so differences of that size between rows are within noise at 3 seeds.",
            "",
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    from normrl.commands._exit import run_command

    return run_command("split_cifar.py", compare, parse_compare(argv))


if __name__ == "__main__":
    sys.exit(main())
