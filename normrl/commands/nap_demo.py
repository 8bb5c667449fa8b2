"""``normrl nap-demo``: Normalize-and-Project on a sequence of random-label tasks.

A small, seeded plasticity experiment (a few seconds on a CPU): one set of inputs,
re-labelled at random for every task, memorized by the same MLP trained with Adam,
once as a plain MLP and once in its NaP form (:func:`~normrl.normalization.apply_nap`
+ :class:`~normrl.normalization.NaPProjector`, Lyle et al. 2024, arXiv 2407.01800),
both from the same initial weights. Prints, per task, the final training loss and
accuracy of both and the norms of the hidden weight matrices: the plain network's
grow from task to task (its effective learning rate decays), NaP's stay at their
initial values. Writes ``config.json`` and ``summary.json`` to ``--logdir``.
"""
from __future__ import annotations

import copy
import time

NAME = "nap-demo"
HELP = "train an MLP with and without Normalize-and-Project on a sequence of random-label tasks"

#: Problem size: inputs, input dimension, classes, hidden width, batch size, Adam lr.
DEFAULTS = dict(num_inputs=512, in_dim=32, num_classes=10, hidden=256, batch_size=128, lr=3e-3)


def add_arguments(parser) -> None:
    parser.add_argument("--tasks", type=int, default=8, help="number of random-label tasks (default: 8)")
    parser.add_argument("--steps-per-task", type=int, default=400, help="Adam updates per task (default: 400)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, labels and initialization (default: 0)")
    parser.add_argument("--logdir", default="runs/nap-demo", help="where config.json and summary.json go (default: runs/nap-demo)")
    parser.add_argument("--device", default="auto", help="torch device, or 'auto' for cuda when available (default: auto)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default: 1; the matrices are small, more threads mostly add contention)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _mlp(in_dim: int, hidden: int, out_dim: int):
    import torch.nn as nn

    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def _hidden_norms(model) -> list:
    import torch.nn as nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight.norm().item() for m in linears[:-1]]


def _train_variants(variants: dict, x, labels, batches, args, tqdm) -> dict:
    """Train every variant on every task in turn; per task and variant: loss, accuracy
    and hidden-weight norms on all inputs after the task."""
    import torch
    import torch.nn.functional as F

    results = {name: [] for name in variants}
    bar = tqdm(total=len(variants) * args.tasks * args.steps_per_task, desc=NAME, unit="step", disable=args.no_progress)
    for task in range(args.tasks):
        y = labels[task]
        for name, (model, opt) in variants.items():
            model.train()
            for idx in batches[task]:
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            bar.update(args.steps_per_task)
            with torch.no_grad():
                logits = model(x)
                results[name].append({
                    "task": task,
                    "loss": F.cross_entropy(logits, y).item(),
                    "accuracy": (logits.argmax(1) == y).float().mean().item(),
                    "hidden_weight_norms": _hidden_norms(model),
                })
            bar.set_postfix(task=task, **{f"{name}_loss": round(results[name][-1]["loss"], 3)})
    bar.close()
    return results


def _print_table(results: dict, initial_norms: dict, cfg: dict, args, device) -> None:
    print(f"\nNaP demo: {args.tasks} random-label tasks x {args.steps_per_task} Adam steps, lr {cfg['lr']}, "
          f"MLP {cfg['in_dim']}-{cfg['hidden']}-{cfg['hidden']}-{cfg['num_classes']}, seed {args.seed}, {device}")
    print("initial hidden-weight norms: " + "  ".join(f"{k} " + "/".join(f"{v:.2f}" for v in n) for k, n in initial_norms.items()))
    header = f"{'task':>4}  {'plain loss':>10}  {'nap loss':>9}  {'plain acc':>9}  {'nap acc':>8}  {'plain ||W|| hidden':>20}  {'nap ||W|| hidden':>20}"
    print(header)
    print("-" * len(header))
    for p, n in zip(results["plain"], results["nap"]):
        pn = "/".join(f"{v:.2f}" for v in p["hidden_weight_norms"])
        nn_ = "/".join(f"{v:.2f}" for v in n["hidden_weight_norms"])
        print(f"{p['task']:>4}  {p['loss']:>10.4f}  {n['loss']:>9.4f}  {p['accuracy']:>9.3f}  {n['accuracy']:>8.3f}  {pn:>20}  {nn_:>20}")


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from normrl.normalization import NaPProjector, ProjectedOptimizer, apply_nap
    from normrl.normalization.nap import OUTPUT_DEFAULT
    from normrl.runs.device import resolve_device
    from normrl.utils.errors import UserError
    from normrl.utils.run_dir import check_logdir, write_config, write_summary

    for flag, value in (("--tasks", args.tasks), ("--steps-per-task", args.steps_per_task), ("--threads", args.threads)):
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = dict(DEFAULTS, tasks=args.tasks, steps_per_task=args.steps_per_task, seed=args.seed, device=str(device), threads=args.threads,
               norm="layernorm", projection="whole tensor, every step", norm_params="joint",
               output=OUTPUT_DEFAULT)
    check_logdir(args.logdir)
    write_config(args.logdir, cfg, command=NAME)

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(cfg["num_inputs"], cfg["in_dim"], generator=gen).to(device)
    labels = [torch.randint(0, cfg["num_classes"], (cfg["num_inputs"],), generator=gen).to(device) for _ in range(args.tasks)]
    batches = [
        torch.randint(0, cfg["num_inputs"], (args.steps_per_task, cfg["batch_size"]), generator=gen).to(device)
        for _ in range(args.tasks)
    ]
    torch.manual_seed(args.seed)
    plain = _mlp(cfg["in_dim"], cfg["hidden"], cfg["num_classes"]).to(device)
    nap = apply_nap(copy.deepcopy(plain))
    variants = {
        "plain": (plain, torch.optim.Adam(plain.parameters(), lr=cfg["lr"])),
        "nap": (nap, ProjectedOptimizer(torch.optim.Adam(nap.parameters(), lr=cfg["lr"]), NaPProjector(nap))),
    }
    initial_norms = {name: _hidden_norms(model) for name, (model, _) in variants.items()}
    start = time.perf_counter()
    results = _train_variants(variants, x, labels, batches, args, tqdm)
    wall = time.perf_counter() - start
    _print_table(results, initial_norms, cfg, args, device)
    summary = {
        "wall_seconds": round(wall, 2),
        "initial_hidden_weight_norms": initial_norms,
        "per_task": results,
        "final_loss": {name: r[-1]["loss"] for name, r in results.items()},
        "mean_final_loss": {name: sum(t["loss"] for t in r) / len(r) for name, r in results.items()},
    }
    path = write_summary(args.logdir, summary)
    print(f"wrote {path.parent / 'config.json'} and {path} ({wall:.1f} s)")
    return 0
