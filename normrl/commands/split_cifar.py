"""``normrl split-cifar``: online class-incremental Split CIFAR (the AdaB²N protocol),
through :func:`normrl.runs.online.train_split`.

Example::

    normrl split-cifar --data-dir data --dataset cifar10 --norm adab2n --method er_ace \\
        --buffer 500 --seed 0 --logdir runs/scifar10_adab2n_s0 --download

``--dataset digits`` runs the scikit-learn digits 5-task split offline (no
``--data-dir`` needed).
"""
from __future__ import annotations

import argparse

NAME = "split-cifar"
HELP = "online continual learning on Split CIFAR-10/100 (ER, ER-ACE, DER++) with any registered norm"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from normrl.continual.online.methods import METHODS
    from normrl.data.split import DEFAULT_TASKS

    parser.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py / cifar-100-python (required for CIFAR)")
    parser.add_argument("--dataset", default="cifar10", choices=tuple(DEFAULT_TASKS), help="[cifar10]")
    parser.add_argument("--download", action="store_true", help="download and verify the official archive when missing")
    parser.add_argument("--n-tasks", type=int, default=None, help="tasks [5 for cifar10/digits, 10 for cifar100; 20 also valid]")
    parser.add_argument("--scenario", default="class-incremental", choices=("class-incremental", "task-incremental"), help="headline metric [class-incremental]")
    parser.add_argument("--class-order-seed", type=int, default=0, help="0: natural class order, else a seeded permutation [0]")
    parser.add_argument("--norm", default="adab2n", help="registered norm of the ResNet-18 (see `normrl norms`) [adab2n]")
    parser.add_argument("--method", default="er_ace", choices=tuple(METHODS), help="[er_ace]")
    parser.add_argument("--buffer", type=int, default=500, help="reservoir buffer size [500]")
    parser.add_argument("--batch-size", type=int, default=10, help="stream batch [10]")
    parser.add_argument("--replay-batch-size", type=int, default=10, help="replay batch per draw [10]")
    parser.add_argument("--lr", type=float, default=0.03, help="SGD learning rate [0.03]")
    parser.add_argument("--epochs", type=int, default=1, help="passes over each task [1: online]")
    parser.add_argument("--nf", type=int, default=20, help="ResNet-18 width [20]")
    parser.add_argument("--kappa", type=float, default=None, help="AdaB²N kappa [layer default 1.0]")
    parser.add_argument("--adab2n-lambda", type=float, default=1.0, help="AdaB²N auxiliary loss weight [1.0]")
    parser.add_argument("--derpp-alpha", type=float, default=0.1, help="DER++ logit-MSE weight [0.1]")
    parser.add_argument("--derpp-beta", type=float, default=0.5, help="DER++ replay-CE weight [0.5]")
    parser.add_argument("--augment", action="store_true", help="random crop + horizontal flip of stream and replay samples")
    parser.add_argument("--intervention", action="append", default=[], metavar="SPEC",
                        help="plasticity intervention NAME[:key=value,...], repeatable (`normrl interventions`) [none]")
    parser.add_argument("--seed", type=int, default=0, help="[0]")
    parser.add_argument("--device", default="auto", help="[auto: cuda if available, else cpu]")
    parser.add_argument("--logdir", required=True, help="run directory (TensorBoard, config.json, summary.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def online_config(args):
    """The :class:`~normrl.continual.online.OnlineCLConfig` these flags mean."""
    from normrl.continual.online import OnlineCLConfig
    from normrl.utils.errors import UserError

    if args.kappa is not None and args.norm != "adab2n":
        raise UserError(f"--kappa applies to --norm adab2n only, got --norm {args.norm}")
    return OnlineCLConfig(method=args.method, norm=args.norm, buffer_size=args.buffer, batch_size=args.batch_size,
                          replay_batch_size=args.replay_batch_size, lr=args.lr, epochs=args.epochs, nf=args.nf,
                          derpp_alpha=args.derpp_alpha, derpp_beta=args.derpp_beta, adab2n_lambda=args.adab2n_lambda,
                          norm_kwargs={} if args.kappa is None else {"kappa": args.kappa},
                          interventions=tuple(args.intervention), seed=args.seed)


def run(args) -> int:
    from normrl.runs.online import train_split

    summary = train_split(args.dataset, online_config(args), args.logdir, n_tasks=args.n_tasks,
                          class_order_seed=args.class_order_seed, scenario=args.scenario, data_dir=args.data_dir,
                          download=args.download, augment=args.augment, device=args.device,
                          progress=not args.no_progress)
    cil, til = summary["class_il"], summary["task_il"]
    print(f"final accuracy class-IL {cil['final_accuracy']:.4f} (forgetting {cil['forgetting']:.4f}), "
          f"task-IL {til['final_accuracy']:.4f}; {args.logdir}/summary.json")
    return 0
