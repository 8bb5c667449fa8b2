"""Training in chunks: the loop every run entry point shares between ``learn`` calls —
stop on a signal, checkpoint every so many env steps, refresh one progress bar."""
from __future__ import annotations

import math
import time
from typing import Callable

from normrl.runs.signals import StopSignals


def train_in_chunks(learn: Callable[[int], None], done: Callable[[], int], unit: int, steps: int, *,
                    checkpoint_every: int, progress_every: int, progress: bool, stop: StopSignals, desc: str,
                    save: Callable[[], None], recent_return: Callable[[], float], steps_per_count: int = 1) -> None:
    """Call ``learn(n)`` with ``n`` about ``progress_every`` env steps (whole ``unit``\\ s:
    the env steps of one rollout or batched step) until ``done()`` reaches ``steps`` or
    ``stop`` is requested; ``save()`` every ``checkpoint_every`` steps; with ``progress``
    one tqdm bar whose postfix shows env steps per second (``steps_per_count`` env steps
    per counted step: the number of stacked seeds) and ``recent_return()``."""
    chunk = unit * math.ceil(progress_every / unit)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=min(done(), steps), unit="step", unit_scale=True, desc=desc, dynamic_ncols=True)
    last_ckpt = done()
    try:
        while done() < steps and not stop.requested:
            before, tc = done(), time.perf_counter()
            learn(min(chunk, steps - done()))
            if done() - last_ckpt >= checkpoint_every:
                save()
                last_ckpt = done()
            if bar is not None:
                sps = steps_per_count * (done() - before) / max(time.perf_counter() - tc, 1e-9)
                bar.n = min(done(), steps)
                bar.set_postfix(sps=f"{sps:,.0f}", ret=f"{recent_return():.2f}", refresh=False)
                bar.refresh()
    finally:
        if bar is not None:
            bar.close()
