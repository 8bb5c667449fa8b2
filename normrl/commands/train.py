"""``normrl train``: train PPO or DQN on one env; flags generated from the config.

Every field of :class:`~normrl.agents.PPOConfig` / :class:`~normrl.agents.DQNConfig`
is a flag (``learning_rate`` -> ``--learning-rate``; booleans as ``--x/--no-x``;
tuples as several values); unset flags keep the env's preset
(:mod:`normrl.agents.presets`). The run directory gets ``config.json`` before the
first step, TensorBoard events during training, and ``summary.json`` at the end.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import time
import typing
from pathlib import Path

NAME = "train"
HELP = "train PPO or DQN on one environment (TensorBoard logs, config.json, summary.json)"

# Config fields that have their own top-level flag.
_TOP_LEVEL = {"seed", "num_envs", "norm"}


def _optional_float(text: str):
    if text.lower() in ("none", "null"):
        return None
    return float(text)


def _add_config_flags(parser: argparse.ArgumentParser, classes: dict) -> None:
    """One flag per field of the config dataclasses in ``classes`` (``{algo: cls}``);
    a field both have is one flag. Help shows each algorithm's default."""
    group = parser.add_argument_group("config", "fields of PPOConfig / DQNConfig; unset flags keep the env preset (defaults shown per algorithm without a preset)")
    fields: dict[str, tuple] = {}
    for algo, cls in classes.items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if field.name in _TOP_LEVEL:
                continue
            hint, defaults = fields.get(field.name, (hints[field.name], {}))
            defaults[algo] = field.default
            fields[field.name] = (hint, defaults)
    for name, (hint, defaults) in fields.items():
        kwargs: dict = {"dest": f"cfg_{name}", "default": argparse.SUPPRESS}
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is tuple:
            kwargs.update(type=int, nargs="+", metavar="N")
        elif origin is typing.Union and type(None) in args:
            kwargs.update(type=_optional_float, metavar="X|none")
        else:
            kwargs.update(type=hint, metavar=name.upper())
        kwargs["help"] = ", ".join(f"{algo}: {d!r}" for algo, d in defaults.items())
        group.add_argument("--" + name.replace("_", "-"), **kwargs)


def config_flag_values(args) -> dict:
    """The config fields given as generated flags (see :func:`_add_config_flags`), checked
    against ``args.algo``'s config class (a flag of the other algorithm is a UserError)."""
    from normrl.agents.presets import config_class
    from normrl.utils.errors import UserError

    own = {f.name for f in dataclasses.fields(config_class(args.algo))}
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}
    foreign = sorted(set(given) - own)
    if foreign:
        raise UserError(f"--{foreign[0].replace('_', '-')} is not a {args.algo} option")
    if "hidden" in given:
        given["hidden"] = tuple(given["hidden"])
    return given


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from normrl.agents.dqn.config import DQNConfig
    from normrl.agents.ppo.config import PPOConfig

    parser.add_argument("--algo", required=True, choices=("ppo", "dqn"), help="algorithm")
    parser.add_argument("--env", required=True, help="env id, e.g. CartPole-v1, MinAtar/Breakout, ALE/Pong-v5")
    parser.add_argument("--norm", default="none", help="registered norm name for the networks (see `normrl norms`) [none]")
    parser.add_argument("--steps", type=int, required=True, help="env steps to train")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel sub-envs [the env preset's]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the env, networks and sampling [0]")
    parser.add_argument("--device", default="cpu", help="torch device [cpu]")
    parser.add_argument("--logdir", default=None, help="run directory [runs/<algo>_<env>_<norm>_s<seed>_<time>]")
    parser.add_argument("--checkpoint", default=None, help="save the agent here at the end")
    parser.add_argument("--resume", default=None, help="load this checkpoint before training")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads; 1 is usually fastest for small networks on a shared machine [0: torch's default]")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_flags(parser, {"ppo": PPOConfig, "dqn": DQNConfig})


def run(args) -> int:
    import torch

    from normrl.agents.presets import preset_config
    from normrl.envs import make_env
    from normrl.normalization.registry import get_norm_layer
    from normrl.utils.errors import UserError
    from normrl.utils.run_dir import write_config, write_summary

    given = config_flag_values(args)
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.num_envs is not None:
        given["num_envs"] = args.num_envs
    if args.norm.lower() != "none":
        get_norm_layer(args.norm)  # ValueError listing the valid names
    config = preset_config(args.algo, args.env, seed=args.seed, norm=args.norm, **given).validate()
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UserError(f"bad --device {args.device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")
    logdir = Path(args.logdir) if args.logdir else Path("runs") / (
        f"{args.algo}_{re.sub(r'[^A-Za-z0-9.-]+', '-', args.env)}_{args.norm}_s{args.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    )
    env = make_env(args.env, config.num_envs, device, seed=args.seed)
    write_config(logdir, config, algo=args.algo, env=args.env, steps=args.steps, device=str(device), resume=args.resume,
                 threads=torch.get_num_threads())

    from normrl.agents import DQN, PPO

    agent = (PPO if args.algo == "ppo" else DQN)(env, config, logdir=logdir)
    if args.resume:
        agent.load(args.resume)
    start_steps = agent.num_steps
    t0 = time.perf_counter()
    agent.learn(args.steps, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    if args.checkpoint:
        agent.save(args.checkpoint)
    agent.close()
    summary = agent.summary()
    steps = agent.num_steps - start_steps
    summary.update(norm=args.norm, seed=args.seed, device=str(device), num_envs=config.num_envs,
                   wall_time_s=wall, steps_per_second=steps / wall if wall > 0 else None, trained_steps=steps)
    write_summary(logdir, summary)
    ret = summary["mean_return_last_100"]
    print(f"{args.algo} {args.env}: {agent.num_steps} steps in {wall:.1f}s ({steps / max(wall, 1e-9):,.0f} steps/s), "
          f"mean return (last 100 episodes) {'n/a' if ret is None else f'{ret:.2f}'}; logs in {logdir}")
    return 0
