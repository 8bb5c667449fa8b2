"""Speed of the normalization layers and of the NaP projection.

Two measurements, each the median over ``--repeats`` timed repetitions after
``--warmup`` untimed ones (``torch.cuda.synchronize`` before every clock read on
CUDA):

1. **Norm layers**: forward + backward (gradient w.r.t. the input and every
   parameter) of every registered norm, and of the reference ``torch.nn.LayerNorm``,
   in training mode at RL shapes:

   * ``layout="nc"``: batch 256, 1024, 4096 x width 256, 512, 1024;
   * ``layout="nchw"``: the activation shapes of the Nature CNN on 84x84 frames,
     (B, 32, 20, 20), (B, 64, 9, 9), (B, 64, 7, 7) for B = 32 and 256; the reference
     is ``torch.nn.LayerNorm(C)`` over the channels of the channels-last view (the
     same computation as our ``layernorm`` in ``nchw``).

   Reported: milliseconds per forward+backward and the ratio to the reference.
   A layer that cannot be called as ``layer(x)`` (e.g. it needs a task id) is listed
   with its error instead of a time.

2. **NaP projection overhead**: a ``NatureCNN(4, 18, norm="nap")`` trained with Adam
   (lr 1e-4) on batches of 32 random 84x84 uint8 frames (the DQN setting). Times
   ``optimizer.step()`` alone, ``optimizer.step()`` followed by
   ``NaPProjector(model).project()``, and a full update (forward, MSE loss, backward,
   step, project). The overhead is the projection's share of the full update, the
   number the design targets (< 5 %).

Usage::

    python scripts/bench_norms.py                       # CPU, full grid
    python scripts/bench_norms.py --device cuda --out docs/results/bench_norms_cuda.json
    python scripts/bench_norms.py --quick               # smallest shapes, few repeats

Prints two tables and writes JSON (``--out``, default ``bench_norms.json``) with the
machine information.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn as nn

from normrl.networks import NatureCNN
from normrl.normalization import NaPProjector, create_norm_layer, get_norm_layer, list_norms
from normrl.utils.run_dir import environment_info, write_json

REFERENCE = "torch.nn.LayerNorm"
NC_BATCHES = (256, 1024, 4096)
NC_WIDTHS = (256, 512, 1024)
NCHW_BATCHES = (32, 256)
NATURE_ACTIVATIONS = ((32, 20, 20), (64, 9, 9), (64, 7, 7))  # (C, H, W) after each conv


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda [cpu]")
    p.add_argument("--quick", action="store_true", help="smallest shapes and 5 repeats (a check that the script runs)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions per measurement [30; 5 with --quick]")
    p.add_argument("--warmup", type=int, default=None, help="untimed repetitions first [5; 2 with --quick]")
    p.add_argument("--norms", default=None, help="comma-separated norm names [every registered norm]")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU [torch's default]")
    p.add_argument("--out", default="bench_norms.json", help="JSON output path [bench_norms.json]")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 30)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 5)
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def median_ms(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


class ChannelLayerNorm(nn.Module):
    """The reference for nchw: ``torch.nn.LayerNorm(C)`` over the channels-last view."""

    def __init__(self, channels: int):
        super().__init__()
        self.ln = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x.movedim(1, -1)).movedim(-1, 1)


def build_layer(name: str, features: int, layout: str) -> nn.Module:
    if name == REFERENCE:
        return nn.LayerNorm(features) if layout == "nc" else ChannelLayerNorm(features)
    return create_norm_layer(name, features, layout=layout)


def forward_backward(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    params = [p for p in layer.parameters() if p.requires_grad]

    def step() -> None:
        y = layer(x)
        torch.autograd.grad(y, [x, *params], grad)

    return step


def shapes(quick: bool) -> list[tuple[str, tuple[int, ...]]]:
    if quick:
        return [("nc", (NC_BATCHES[0], NC_WIDTHS[0])), ("nchw", (NCHW_BATCHES[0], *NATURE_ACTIVATIONS[-1]))]
    out = [("nc", (b, w)) for b in NC_BATCHES for w in NC_WIDTHS]
    out += [("nchw", (b, *chw)) for b in NCHW_BATCHES for chw in NATURE_ACTIVATIONS]
    return out


def bench_layers(args, device: torch.device, names: list[str]) -> list[dict]:
    rows = []
    for layout, shape in shapes(args.quick):
        features = shape[-1] if layout == "nc" else shape[1]
        torch.manual_seed(0)
        x = torch.randn(shape, device=device, requires_grad=True)
        grad = torch.randn(shape, device=device)
        ref_ms = None
        for name in [REFERENCE, *names]:
            row = {"norm": name, "layout": layout, "shape": list(shape)}
            if name != REFERENCE and layout not in getattr(get_norm_layer(name), "layouts", ("nc",)):
                continue
            try:
                layer = build_layer(name, features, layout).to(device).train()
                ms = median_ms(forward_backward(layer, x, grad), device, args.warmup, args.repeats)
            except Exception as exc:  # a layer needing more than layer(x): report, keep going
                row["error"] = f"{type(exc).__name__}: {exc}"
                rows.append(row)
                continue
            if name == REFERENCE:
                ref_ms = ms
            row["ms"] = ms
            row["vs_torch_layernorm"] = ms / ref_ms if ref_ms else None
            rows.append(row)
    return rows


def bench_nap(args, device: torch.device) -> dict:
    torch.manual_seed(0)
    batch = 32
    obs = torch.randint(0, 256, (batch, 4, 84, 84), dtype=torch.uint8, device=device)
    target = torch.randn(batch, 18, device=device)

    def make():
        torch.manual_seed(0)
        model = NatureCNN(4, 18, norm="nap").to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-4)

    model, opt = make()
    nn.functional.mse_loss(model(obs), target).backward()  # fixed gradients for the step timings
    projector = NaPProjector(model)
    step_ms = median_ms(opt.step, device, args.warmup, args.repeats)

    def step_and_project() -> None:
        opt.step()
        projector.project()

    step_project_ms = median_ms(step_and_project, device, args.warmup, args.repeats)
    project_ms = median_ms(projector.project, device, args.warmup, args.repeats)

    model, opt = make()
    projector = NaPProjector(model)

    def update(project: bool) -> Callable[[], None]:
        def run() -> None:
            opt.zero_grad(set_to_none=True)
            nn.functional.mse_loss(model(obs), target).backward()
            opt.step()
            if project:
                projector.project()

        return run

    update_ms = median_ms(update(False), device, args.warmup, args.repeats)
    update_project_ms = median_ms(update(True), device, args.warmup, args.repeats)
    return {
        "network": "NatureCNN(4, 18, norm='nap')",
        "batch": batch,
        "projected_layers": len(projector.layer_names),
        "adam_step_ms": step_ms,
        "adam_step_plus_project_ms": step_project_ms,
        "project_ms": project_ms,
        "update_ms": update_ms,
        "update_plus_project_ms": update_project_ms,
        "overhead_pct_of_update": 100.0 * project_ms / update_ms,
        "overhead_pct_measured": 100.0 * (update_project_ms - update_ms) / update_ms,
    }


def print_tables(rows: list[dict], nap: dict) -> None:
    print(f"{'norm':<20} {'layout':<6} {'shape':<20} {'fwd+bwd ms':>11} {'vs LN':>7}")
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        if "error" in r:
            print(f"{r['norm']:<20} {r['layout']:<6} {shape:<20} {'error: ' + r['error'][:60]}")
            continue
        ratio = f"{r['vs_torch_layernorm']:.2f}" if r["vs_torch_layernorm"] else "-"
        print(f"{r['norm']:<20} {r['layout']:<6} {shape:<20} {r['ms']:>11.3f} {ratio:>7}")
    print()
    print(f"NaP projection, {nap['network']}, batch {nap['batch']}, {nap['projected_layers']} projected layers")
    for key in ("adam_step_ms", "adam_step_plus_project_ms", "project_ms", "update_ms", "update_plus_project_ms"):
        print(f"  {key:<28} {nap[key]:9.3f}")
    print(f"  {'overhead % of an update':<28} {nap['overhead_pct_of_update']:9.2f}  (measured difference: {nap['overhead_pct_measured']:.2f})")


def main(argv=None) -> int:
    args = parse_args(argv)
    from normrl.runs.device import resolve_device
    from normrl.utils.errors import UserError

    try:
        device = resolve_device(args.device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list_norms() if args.norms is None else [n.strip().lower() for n in args.norms.split(",") if n.strip()]
    for n in names:
        get_norm_layer(n)  # ValueError listing the valid names
    rows = bench_layers(args, device, names)
    nap = bench_nap(args, device)
    print_tables(rows, nap)
    result = {
        "machine": {**environment_info(), "device": str(device), "threads": torch.get_num_threads()},
        "settings": {"quick": args.quick, "repeats": args.repeats, "warmup": args.warmup},
        "layers": rows,
        "nap_projection": nap,
    }
    path = write_json(args.out, result)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
