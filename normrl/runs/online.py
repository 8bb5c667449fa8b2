"""``train_split``: one online continual-learning run on a class-split stream (the
AdaB²N protocol) into a run directory — the code path behind ``normrl split-cifar``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from normrl.runs.device import resolve_device
from normrl.utils.errors import UserError


def train_split(dataset: str, config, logdir: str | Path, *, n_tasks: int | None = None, class_order_seed: int = 0,
                scenario: str = "class-incremental", data_dir: str | None = None, download: bool = False,
                augment: bool = False, device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train :class:`~normrl.continual.online.OnlineCLTrainer` with ``config`` (an
    :class:`~normrl.continual.online.OnlineCLConfig`) on the split stream ``dataset``
    (:func:`normrl.data.load_split`) and return the summary.

    ``logdir`` receives ``config.json`` before the first step, TensorBoard events
    (``train/loss``, ``eval/{class_il,task_il}/task_<j>``, ``.../average_seen``,
    ``final/...``) and ``summary.json`` (accuracy matrices, final average accuracy,
    average forgetting, backward transfer for both scenarios). A directory that already
    holds a finished run is refused.
    """
    from normrl.continual.online import OnlineCLTrainer
    from normrl.data import load_split
    from normrl.utils.run_dir import check_logdir, write_config, write_summary

    config.validate()
    dev = resolve_device(device)
    data = load_split(dataset, n_tasks=n_tasks, class_order_seed=class_order_seed, scenario=scenario, root=data_dir,
                      download=download, device=dev, augment=augment)
    if (Path(logdir) / "summary.json").exists():
        raise UserError(f"{logdir} already holds a finished run (summary.json); choose another --logdir")
    logdir = check_logdir(logdir)
    write_config(logdir, config, dataset=dataset, n_tasks=data.n_tasks, scenario=data.scenario,
                 class_order_seed=class_order_seed, augment=augment, device=str(dev))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs * len(data.train_labels), unit="img", desc=f"{dataset} {config.method} {config.norm}")
    try:
        summary = OnlineCLTrainer(data, config, writer=writer, progress=bar.update if bar else None).run()
    finally:
        if bar is not None:
            bar.close()
        writer.close()
    write_summary(logdir, summary)
    return summary
