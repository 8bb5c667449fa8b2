"""``normrl split-cifar``: online class-incremental Split CIFAR (the AdaB²N protocol).

Example::

    normrl split-cifar --data-dir data --dataset cifar10 --norm adab2n --method er_ace \\
        --buffer 500 --seed 0 --logdir runs/scifar10_adab2n_s0 --download

The run directory gets ``config.json`` before the first step, TensorBoard events
(``train/loss``, ``eval/{class_il,task_il}/task_<j>``, ``.../average_seen``,
``final/...``) and ``summary.json`` (accuracy matrices, final average accuracy,
average forgetting, backward transfer for both scenarios). ``--dataset digits`` runs the
scikit-learn digits 5-task split offline (no ``--data-dir`` needed).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from normrl.utils.errors import UserError

NAME = "split-cifar"
HELP = "online continual learning on Split CIFAR-10/100 (ER, ER-ACE, DER++) with any registered norm"

DEFAULT_TASKS = {"cifar10": 5, "cifar100": 10, "digits": 5}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from normrl.continual.methods import METHODS

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
    parser.add_argument("--seed", type=int, default=0, help="[0]")
    parser.add_argument("--device", default=None, help="[cuda if available, else cpu]")
    parser.add_argument("--logdir", required=True, help="run directory (TensorBoard, config.json, summary.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_data(args, device):
    """The stream named by the arguments (UserError for a missing/corrupt dataset)."""
    from normrl.envs.split_cifar import SplitCIFAR, split_digits

    n_tasks = args.n_tasks or DEFAULT_TASKS[args.dataset]
    if args.dataset == "digits":
        return split_digits(n_tasks, args.class_order_seed, args.scenario, device=device)
    if args.data_dir is None:
        raise UserError(f"--data-dir is required for {args.dataset} (the folder that holds or will hold the extracted archive; add --download to fetch it)")
    return SplitCIFAR(args.dataset, n_tasks, args.class_order_seed, args.scenario, root=args.data_dir, download=args.download, device=device, augment=args.augment)


def run(args) -> int:
    import torch

    from normrl.continual.trainer import OnlineCLConfig, OnlineCLTrainer
    from normrl.utils.run_dir import write_config, write_summary

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")
    norm_kwargs = {} if args.kappa is None else {"kappa": args.kappa}
    config = OnlineCLConfig(method=args.method, norm=args.norm, buffer_size=args.buffer, batch_size=args.batch_size, replay_batch_size=args.replay_batch_size, lr=args.lr, epochs=args.epochs, nf=args.nf, derpp_alpha=args.derpp_alpha, derpp_beta=args.derpp_beta, adab2n_lambda=args.adab2n_lambda, norm_kwargs=norm_kwargs, seed=args.seed)
    config.validate()
    if args.kappa is not None and config.norm != "adab2n":
        raise UserError(f"--kappa applies to --norm adab2n only, got --norm {config.norm}")
    data = build_data(args, device)
    logdir = Path(args.logdir)
    if (logdir / "summary.json").exists():
        raise UserError(f"{logdir} already holds a finished run (summary.json); choose another --logdir")
    write_config(logdir, config, dataset=args.dataset, n_tasks=data.n_tasks, scenario=data.scenario, class_order_seed=args.class_order_seed, augment=args.augment, device=str(device))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        total = config.epochs * len(data.train_labels)
        bar = tqdm(total=total, unit="img", desc=f"{args.dataset} {config.method} {config.norm}")
    try:
        trainer = OnlineCLTrainer(data, config, writer=writer, progress=bar.update if bar else None)
        summary = trainer.run()
    finally:
        if bar is not None:
            bar.close()
        writer.close()
    write_summary(logdir, summary)
    cil, til = summary["class_il"], summary["task_il"]
    print(f"final accuracy class-IL {cil['final_accuracy']:.4f} (forgetting {cil['forgetting']:.4f}), task-IL {til['final_accuracy']:.4f}; {logdir / 'summary.json'}")
    return 0
