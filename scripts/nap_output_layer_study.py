"""NaP's output layer on continual random-label memorization of scikit-learn's digits.

Protocol (issue 12's finding): 1,797 digits images (64 pixels scaled to [0, 1]), a
sequence of tasks that each draw new uniform labels in 0..9 for the same inputs; a
3x256 ReLU MLP (``normrl.networks.MLP``) trained with Adam (lr 1e-3, batch 64, 30
epochs per task, nothing reset between tasks); the training accuracy on all 1,797
images at each task's end. The same seed gives every arm the same labels and batch
order, and the same initial weights to every arm with the same architecture.

Every arm goes through the library's public API (``MLP(norm=...)``,
``NaPProjector``/``ProjectedOptimizer``, ``reset_optimizer_state``,
``normrl.metrics``), except the learned-gain head (``*_head_gain``), a script-only
diagnostic: a scalar multiplier on the logits, trained with the rest.

Per task end it records: accuracy and loss; the output layer's weight norm; the
logit scale (RMS over samples of the per-sample centred logits) and the mean
softmax confidence; the effective LR ``||W_t - W_{t-1}|| / ||W_{t-1}||`` averaged
over the task's last epoch, for the hidden layers (mean) and the output layer; the
dormant ratio (ReDo score <= 0.025, mean over the hidden ReLUs); srank (delta 0.01) of
the last hidden features; the spread of hidden row norms (coefficient of variation,
mean over layers); the last norm layer's gain/offset norms.

Headline: mean accuracy over the last 5 tasks, and *plasticity retained* = that
mean / the fresh-init oracle's mean over the same tasks (arm ``fresh``: a new plain
network and optimizer per task, same seed).

    OMP_NUM_THREADS=1 python scripts/nap_output_layer_study.py --arms fresh,plain,nap --seeds 0,1,2
    python scripts/nap_output_layer_study.py --list-arms

Results go to ``--out`` (JSON); finished (arm, seed) runs with the same protocol are
kept and skipped on re-run, so arms can be added one call at a time (``--merge``
copies the runs of other result files, e.g. from parallel calls). ``--problem
regression`` swaps the labels for 10 Gaussian targets per image (standard deviation
``--target-scale``), the loss for MSE and the accuracy for R²; ``--tasks 1 --epochs 900
--curve-every 30`` is the stationary check (one task, 30x longer).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN = (256, 256, 256)

# name -> spec. Keys: norm (None | "layernorm" | "nap"), fresh (new net + optimizer per
# task), lr, nap (NaPProjector kwargs), reset_adam (clear Adam state at each task
# switch), head_wd (decoupled weight decay on the output layer only, AdamW), head_gain
# (learned scalar on the logits, initial value 1).
ARMS: dict[str, dict] = {
    "fresh": dict(norm=None, fresh=True),
    "fresh_nap": dict(norm="nap", fresh=True, nap=dict(output="free")),
    "fresh_nap_head_project": dict(norm="nap", fresh=True, nap=dict(output="project")),
    "plain": dict(norm=None),
    "layernorm": dict(norm="layernorm"),
    "nap": dict(norm="nap", nap=dict(output="free")),
    "nap_free_gain": dict(norm="nap", nap=dict(output="free", norm_params="free")),
    "nap_per_row": dict(norm="nap", nap=dict(output="free", per_row=True)),
    "nap_reset_adam": dict(norm="nap", nap=dict(output="free"), reset_adam=True),
    "nap_head_project": dict(norm="nap", nap=dict(output="project")),
    "nap_head_project_rows": dict(norm="nap", nap=dict(output="project_rows")),
    "nap_head_project_per_row": dict(norm="nap", nap=dict(output="project", per_row=True)),
    "nap_head_project_free_gain": dict(norm="nap", nap=dict(output="project", norm_params="free")),
    "nap_head_project_gain": dict(norm="nap", nap=dict(output="project"), head_gain=True),
    "nap_head_relax1e-3": dict(norm="nap", nap=dict(output="relax", output_rate=1e-3)),
    "nap_head_relax1e-4": dict(norm="nap", nap=dict(output="relax", output_rate=1e-4)),
    "nap_head_wd1e-1": dict(norm="nap", nap=dict(output="free"), head_wd=1e-1),
    "nap_head_wd1e-2": dict(norm="nap", nap=dict(output="free"), head_wd=1e-2),
    "plain_lr1e-4": dict(norm=None, lr=1e-4),
    "layernorm_lr1e-4": dict(norm="layernorm", lr=1e-4),
    "nap_lr1e-4": dict(norm="nap", nap=dict(output="free"), lr=1e-4),
    "nap_head_project_lr1e-4": dict(norm="nap", nap=dict(output="project"), lr=1e-4),
    "fresh_lr1e-4": dict(norm=None, fresh=True, lr=1e-4),
}


class LogitGain(nn.Module):
    """Logits times one learned scalar (initial value 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def load_data() -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().data, dtype=torch.float32) / 16.0


def task_labels(seed: int, task: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1_000_003 * seed + task)
    return torch.randint(0, 10, (n,), generator=g)


def task_targets(seed: int, task: int, n: int, scale: float) -> torch.Tensor:
    """Regression variant: 10 Gaussian targets per image, standard deviation ``scale``."""
    g = torch.Generator().manual_seed(1_000_003 * seed + task)
    return scale * torch.randn(n, 10, generator=g)


def task_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out, y) if y.is_floating_point() else F.cross_entropy(out, y)


def task_score(out: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy (classification) or R² = 1 - MSE / Var(y) (regression)."""
    if y.is_floating_point():
        return float(1.0 - (out - y).pow(2).mean() / y.var())
    return float((out.argmax(1) == y).float().mean())


def build(spec: dict, init_seed: int):
    from normrl.networks import MLP
    from normrl.normalization import NaPProjector, ProjectedOptimizer

    torch.manual_seed(init_seed)
    net = MLP(64, 10, hidden=HIDDEN, norm=spec.get("norm"))
    model = nn.Sequential(net, LogitGain()) if spec.get("head_gain") else net
    head = net[len(net) - 1]
    lr = spec.get("lr", 1e-3)
    head_wd = spec.get("head_wd", 0.0)
    if head_wd:
        head_ids = {id(p) for p in head.parameters()}
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in head_ids], "weight_decay": 0.0},
            {"params": list(head.parameters()), "weight_decay": head_wd},
        ]
        opt = torch.optim.AdamW(groups, lr=lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    if spec.get("norm") == "nap":
        projector = NaPProjector(net, **spec.get("nap", {}))
        opt = ProjectedOptimizer(opt, projector)
    return model, net, head, opt


def _hidden_relus(net: nn.Module) -> list[nn.Module]:
    from normrl.metrics.monitor import hidden_activation_layers

    named = dict(net.named_modules())
    return [named[n] for n in hidden_activation_layers(net)]


@torch.no_grad()
def measure(model, net, head, x, y) -> dict:
    from normrl.metrics import dormant_ratio, srank

    acts: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out)) for m in _hidden_relus(net)]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    centred = logits - logits.mean(dim=1, keepdim=True)
    hidden = [m for m in net if isinstance(m, nn.Linear)][:-1]
    row_cv = [float((w.weight.norm(dim=1).std() / w.weight.norm(dim=1).mean())) for w in hidden]
    norms = [m for m in net if hasattr(m, "weight") and not isinstance(m, nn.Linear) and m.weight is not None]
    out = {
        "acc": task_score(logits, y),
        "loss": float(task_loss(logits, y)),
        "head_norm": float(head.weight.norm()),
        "head_bias_norm": float(head.bias.norm()) if head.bias is not None else 0.0,
        "logit_rms": float(centred.pow(2).mean().sqrt()),
        "confidence": float(logits.softmax(1).max(1).values.mean()),
        "dormant": float(torch.stack([dormant_ratio(a, 0.025) for a in acts]).mean()),
        "srank": float(srank(acts[-1])),
        "hidden_norm": float(torch.stack([w.weight.norm() for w in hidden]).mean()),
        "row_cv": sum(row_cv) / len(row_cv),
    }
    if norms:
        last = norms[-1]
        out["gain_norm"] = float(last.weight.norm())
        out["offset_norm"] = float(last.bias.norm()) if getattr(last, "bias", None) is not None else 0.0
    if isinstance(model[-1] if isinstance(model, nn.Sequential) else None, LogitGain):
        out["logit_gain"] = float(model[-1].gain)
    return out


def run(arm: str, seed: int, cfg: dict) -> dict:
    from normrl.metrics.model_stats import effective_lr, snapshot_weights, weight_layers
    from normrl.normalization import reset_optimizer_state

    torch.set_num_threads(1)
    spec = ARMS[arm]
    x = load_data()
    n = x.shape[0]
    batch, epochs = cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = math.ceil(n / batch)
    tasks = list(range(cfg["tasks"]))
    if spec.get("fresh") and cfg["oracle_tasks"]:
        tasks = [t for t in tasks if t in set(cfg["oracle_tasks"])]
    model, net, head, opt = build(spec, init_seed=seed)
    t0 = time.perf_counter()
    per_task = []
    for task in tasks:
        if spec.get("fresh"):
            model, net, head, opt = build(spec, init_seed=10_000 * (seed + 1) + task)
        elif spec.get("reset_adam") and task > 0:
            reset_optimizer_state(opt)
        y = task_targets(seed, task, n, cfg["target_scale"]) if cfg["problem"] == "regression" else task_labels(seed, task, n)
        order_gen = torch.Generator().manual_seed(7919 * (seed + 1) + task)
        layers = weight_layers(net)
        names = list(layers)
        elr_sum = {k: 0.0 for k in names}
        curve = []
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=order_gen)
            last_epoch = epoch == epochs - 1
            for i in range(steps_per_epoch):
                idx = perm[i * batch:(i + 1) * batch]
                loss = task_loss(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                before = snapshot_weights(layers) if last_epoch else None
                opt.step()
                if last_epoch:
                    for k, v in effective_lr(layers, before).items():
                        elr_sum[k] += float(v)
            if cfg["curve_every"] and (epoch + 1) % cfg["curve_every"] == 0:
                with torch.no_grad():
                    curve.append(task_score(model(x), y))
        rec = {"task": task, **measure(model, net, head, x, y)}
        elr = {k: v / steps_per_epoch for k, v in elr_sum.items()}
        rec["hidden_elr"] = sum(elr[k] for k in names[:-1]) / (len(names) - 1)
        rec["head_elr"] = elr[names[-1]]
        if curve:
            rec["curve"] = curve
        per_task.append(rec)
        if cfg["verbose"]:
            print(f"  {arm} seed {seed} task {task:2d}: acc {rec['acc']:.3f} head {rec['head_norm']:.2f} "
                  f"logit_rms {rec['logit_rms']:.2f} hidden_elr {rec['hidden_elr']:.2e} dormant {rec['dormant']:.2f}", flush=True)
    return {"arm": arm, "seed": seed, "per_task": per_task, "wall_s": time.perf_counter() - t0}


def _run_star(args):
    return run(*args)


# ----------------------------------------------------------------------------- report


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _tail_mean(per_task: list[dict], key: str, tail: list[int]) -> float | None:
    vals = [r[key] for r in per_task if r["task"] in tail and key in r]
    return sum(vals) / len(vals) if vals else None


def summarize(results: dict, cfg: dict) -> tuple[str, dict]:
    """Markdown tables (mean ± std over seeds, then per seed) and the summary dict."""
    tail5 = list(range(max(0, cfg["tasks"] - 5), cfg["tasks"]))
    tail3 = tail5[-3:]
    oracle = results.get("fresh", {})
    summary: dict = {}
    for arm, by_seed in results.items():
        rows = {}
        for seed, res in sorted(by_seed.items(), key=lambda kv: int(kv[0])):
            pt = res["per_task"]
            last = pt[-1]
            first = next((r["acc"] for r in pt if r["task"] == 0), None)
            last5 = _tail_mean(pt, "acc", tail5)
            ref = _tail_mean(oracle[seed]["per_task"], "acc", tail5) if seed in oracle else None
            rows[seed] = {
                "first_task_acc": first,
                "last3_acc": _tail_mean(pt, "acc", tail3),
                "last5_acc": last5,
                "retained": (last5 / ref) if (last5 is not None and ref) else None,
                **{k: last[k] for k in ("head_norm", "logit_rms", "confidence", "hidden_elr", "head_elr", "dormant", "srank", "row_cv") if k in last},
                "head_norm_first": pt[0]["head_norm"],
                "wall_s": res["wall_s"],
            }
        summary[arm] = rows
    cols = [("first_task_acc", "task-0 acc"), ("last5_acc", "last-5 acc"), ("retained", "retained"),
            ("head_norm_first", "head ‖W‖ task 0"), ("head_norm", "head ‖W‖ end"), ("logit_rms", "logit RMS end"),
            ("hidden_elr", "hidden ELR end"), ("head_elr", "head ELR end"), ("dormant", "dormant end"), ("row_cv", "row-norm CV end")]
    lines = ["| arm | seeds | " + " | ".join(c[1] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for arm, rows in summary.items():
        cells = []
        for key, _ in cols:
            vals = [r[key] for r in rows.values() if r.get(key) is not None]
            if key.endswith("elr"):
                cells.append(f"{statistics.mean(vals):.2e}" if vals else "—")
            else:
                cells.append(_mean_std(vals))
        lines.append(f"| {arm} | {len(rows)} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (task-0 acc / last-5 acc / retained):", "", "| arm | " + " | ".join(f"seed {s}" for s in sorted({s for r in summary.values() for s in r}, key=int)) + " |"]
    seeds = sorted({s for r in summary.values() for s in r}, key=int)
    lines.append("|---|" + "---|" * len(seeds))
    for arm, rows in summary.items():
        cells = []
        for s in seeds:
            r = rows.get(s)
            if r is None:
                cells.append("—")
                continue
            ret = f"{r['retained']:.2f}" if r["retained"] is not None else "—"
            first = f"{r['first_task_acc']:.3f}" if r["first_task_acc"] is not None else "—"
            cells.append(f"{first} / {r['last5_acc']:.3f} / {ret}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    curves = [(arm, seed, res["per_task"][0]["curve"]) for arm, by_seed in results.items()
              for seed, res in sorted(by_seed.items(), key=lambda kv: int(kv[0])) if res["per_task"][0].get("curve")]
    if curves:
        k = cfg["curve_every"]
        lines += ["", f"First task's accuracy every {k} epochs: epochs to reach 0.99, later checkpoints below 0.99, minimum after reaching it, final:", "",
                  "| arm | seed | epochs to 0.99 | dips below 0.99 | min after | final |", "|---|---|---|---|---|---|"]
        for arm, seed, curve in curves:
            hit = next((i for i, c in enumerate(curve) if c >= 0.99), None)
            after = curve[hit + 1:] if hit is not None else []
            dips = sum(c < 0.99 for c in after)
            lines.append(f"| {arm} | {seed} | {(hit + 1) * k if hit is not None else '—'} | {dips}/{len(after)} | "
                         f"{min(after):.2f} | {curve[-1]:.2f} |" if after else f"| {arm} | {seed} | {(hit + 1) * k if hit is not None else '—'} | — | — | {curve[-1]:.2f} |")
    return "\n".join(lines), summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", default="fresh,plain,layernorm,nap,nap_head_project", help="comma-separated arm names (--list-arms)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--tasks", type=int, default=30)
    p.add_argument("--epochs", type=int, default=30, help="epochs per task")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--problem", choices=("classification", "regression"), default="classification",
                   help="random labels (cross-entropy, score = accuracy) or random Gaussian targets (MSE, score = R²)")
    p.add_argument("--target-scale", type=float, default=10.0, help="regression targets' standard deviation")
    p.add_argument("--oracle-tasks", default="all", help="tasks the fresh-init arms run: 'all' or 'last5' (tasks are exchangeable)")
    p.add_argument("--curve-every", type=int, default=0, help="record full-data accuracy every k epochs [0: off]")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default="nap_output_layer_study.json")
    p.add_argument("--merge", nargs="*", default=[], help="result files (same protocol) whose finished runs are copied into --out first")
    p.add_argument("--no-run", action="store_true", help="only summarize the finished runs in --out (and --merge)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--list-arms", action="store_true")
    a = p.parse_args(argv)
    if a.list_arms:
        for name, spec in ARMS.items():
            print(f"{name:28s} {spec}")
        return 0
    arms = [s for s in a.arms.split(",") if s]
    unknown = [s for s in arms if s not in ARMS]
    if unknown:
        p.error(f"unknown arms {unknown}; choices: {', '.join(ARMS)}")
    seeds = [int(s) for s in a.seeds.split(",") if s]
    if a.oracle_tasks not in ("all", "last5"):
        p.error("--oracle-tasks must be 'all' or 'last5'")
    cfg = {"tasks": a.tasks, "epochs": a.epochs, "batch_size": a.batch_size, "hidden": list(HIDDEN), "lr_default": 1e-3,
           "problem": a.problem, "target_scale": a.target_scale,
           "oracle_tasks": list(range(max(0, a.tasks - 5), a.tasks)) if a.oracle_tasks == "last5" else None,
           "curve_every": a.curve_every, "verbose": a.verbose}
    protocol = {k: cfg[k] for k in ("tasks", "epochs", "batch_size", "hidden", "lr_default")}
    if a.problem == "regression":  # older result files (classification only) have no such keys
        protocol.update(problem=a.problem, target_scale=a.target_scale)
    out = Path(a.out)
    store = {"protocol": protocol, "results": {}}
    if out.exists():
        old = json.loads(out.read_text())
        if old.get("protocol") == protocol:
            store = old
        else:
            print(f"{out} holds another protocol ({old.get('protocol')}); starting a new file", file=sys.stderr)
    for path in a.merge:
        other = json.loads(Path(path).read_text())
        if other.get("protocol") != protocol:
            p.error(f"{path} holds another protocol ({other.get('protocol')})")
        for arm_name, by_seed in other["results"].items():
            store["results"].setdefault(arm_name, {}).update(by_seed)
    todo = [] if a.no_run else [(arm, s, cfg) for arm in arms for s in seeds if str(s) not in store["results"].get(arm, {})]
    t0 = time.perf_counter()
    if a.jobs > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.jobs) as pool:
            for res in pool.imap_unordered(_run_star, todo):
                store["results"].setdefault(res["arm"], {})[str(res["seed"])] = res
                out.write_text(json.dumps(store, indent=1))
                print(f"done {res['arm']} seed {res['seed']} ({res['wall_s']:.0f} s)", flush=True)
    else:
        for job in todo:
            res = run(*job)
            store["results"].setdefault(res["arm"], {})[str(res["seed"])] = res
            out.write_text(json.dumps(store, indent=1))
            print(f"done {res['arm']} seed {res['seed']} ({res['wall_s']:.0f} s)", flush=True)
    selected = {arm: {str(s): store["results"][arm][str(s)] for s in seeds if str(s) in store["results"].get(arm, {})} for arm in arms}
    if "fresh" not in selected and "fresh" in store["results"]:
        selected_oracle = {str(s): store["results"]["fresh"][str(s)] for s in seeds if str(s) in store["results"]["fresh"]}
        selected = {"fresh": selected_oracle, **selected}
    table, summary = summarize(selected, cfg)
    store["summary"] = summary
    out.write_text(json.dumps(store, indent=1))
    print(table)
    print(f"\nwall time this call: {time.perf_counter() - t0:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
