"""``normrl continual``: train one PPO/DQN agent on a task stream, resumably.

Runs :class:`normrl.envs.TaskScheduler` over a built-in stream (docs/continual.md) and
prints the return matrix at the end. The run directory ``--logdir`` receives
``config.json`` (before the first step), TensorBoard events, ``summary.json`` (after
every task visit and at the end) and checkpoints:

``checkpoints/step_<N>/agent.pt`` + ``scheduler.json``, written every
``--checkpoint-every`` env steps, after every task visit, and on SIGINT/SIGTERM (the
run stops after the current chunk, or abandons a running evaluation, which the resumed
run repeats; saves; and exits with status 130/143);
``checkpoints/latest.json`` names the newest complete one and is replaced last, so an
interrupted save never leaves a half-written "latest". Older checkpoints are removed.

``--resume`` continues from ``latest.json`` exactly (same remaining task sequence and
step counts). Without ``--resume`` a run directory that already holds checkpoints is
refused rather than overwritten. Missing, corrupt or incompatible checkpoints (another
stream, algorithm or option set) raise :class:`normrl.utils.errors.CheckpointError`.

Every agent config field is a flag too (``--learning-rate``, ``--buffer-size``, ...: the
same generated flags as ``normrl train``); unset ones keep the first task's env preset.
A resumed run must get the same values (checked against the saved ``config.json``).
"""
from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from normrl.commands._config_flags import add_config_flags, config_flag_values

NAME = "continual"
HELP = "train a PPO/DQN agent on a continual task stream (MinAtar, Atari, permuted) and print the return matrix"

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.json"
#: env steps between progress-bar refreshes (training runs in chunks of at most this)
PROGRESS_EVERY = 8192
#: Options that must match between a run and its resumption.
RESUME_KEYS = ("stream", "algo", "norm", "steps_per_task", "cycles", "seed", "num_envs",
               "reset_optimizer", "restart_lr", "flush_replay", "eval_episodes", "chunk_steps")


def add_arguments(parser) -> None:
    parser.add_argument("--stream", required=True, help="stream name, e.g. minatar, atari-default, atari-Pong,Breakout, "
                        "permuted-obs:CartPole-v1:5 (see docs/continual.md)")
    parser.add_argument("--algo", choices=("ppo", "dqn"), required=True, help="agent")
    parser.add_argument("--norm", default="none", help="registered norm for the networks (see 'normrl norms'; default: none)")
    parser.add_argument("--steps-per-task", type=int, required=True, help="env steps per task visit")
    parser.add_argument("--cycles", type=int, default=1, help="passes over the stream (default: 1)")
    parser.add_argument("--logdir", required=True, help="run directory (config.json, TensorBoard, summary.json, checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --logdir from its latest checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of networks, envs and permutations (default: 0)")
    parser.add_argument("--device", default="auto", help="torch device, or 'auto' for cuda when available (default: auto)")
    parser.add_argument("--num-envs", type=int, default=None, help="parallel envs (default: the algorithm config's num_envs)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per task evaluation (default: 10)")
    parser.add_argument("--reset-optimizer", action="store_true", help="reset the optimizer state at every task switch")
    parser.add_argument("--restart-lr", choices=("auto", "yes", "no"), default="auto",
                        help="restart the LR schedule at task switches: yes, no, or auto (the schedule decides; default)")
    parser.add_argument("--flush-replay", action="store_true", help="clear the DQN replay buffer at every task switch")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, help="env steps between checkpoints (default: 50000)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_config_flags(parser)


# -- checkpoints -----------------------------------------------------------------------------
def _ckpt_root(logdir: Path) -> Path:
    return logdir / CHECKPOINT_DIR


def save_checkpoint(logdir: Path, agent, scheduler) -> Path:
    """Write ``step_<N>/{agent.pt, scheduler.json}``, then point ``latest.json`` at it."""
    from normrl.utils.run_dir import write_json

    root = _ckpt_root(logdir)
    name = f"step_{int(agent.num_steps):012d}"
    target = root / name
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    agent.save(tmp / "agent.pt")
    write_json(tmp / "scheduler.json", {"scheduler": scheduler.state_dict(), "agent_num_steps": int(agent.num_steps)})
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    write_json(root / LATEST, {"checkpoint": name, "num_steps": int(agent.num_steps)})
    for old in root.glob("step_*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint_paths(logdir: Path) -> tuple[Path, dict]:
    """The newest checkpoint folder and its scheduler state; CheckpointError if unusable."""
    from normrl.utils.errors import CheckpointError

    latest = _ckpt_root(logdir) / LATEST
    if not latest.is_file():
        raise CheckpointError(f"--resume: no checkpoint in {logdir} (missing {latest})")
    try:
        pointer = json.loads(latest.read_text())
        folder = _ckpt_root(logdir) / pointer["checkpoint"]
        saved = json.loads((folder / "scheduler.json").read_text())
        state = saved["scheduler"]
        steps = int(saved["agent_num_steps"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"--resume: corrupt checkpoint in {logdir}: {exc}") from exc
    if not (folder / "agent.pt").is_file():
        raise CheckpointError(f"--resume: corrupt checkpoint in {logdir}: {folder / 'agent.pt'} is missing")
    return folder, {"state": state, "agent_num_steps": steps}


# -- the command ---------------------------------------------------------------------------
def _options(args, num_envs: int) -> dict:
    return {"stream": args.stream, "algo": args.algo, "norm": args.norm, "steps_per_task": args.steps_per_task,
            "cycles": args.cycles, "seed": args.seed, "num_envs": num_envs, "reset_optimizer": args.reset_optimizer,
            "restart_lr": args.restart_lr, "flush_replay": args.flush_replay, "eval_episodes": args.eval_episodes,
            # training chunk length: where PPO rollouts and checkpoints fall, so a resumed
            # run must keep it
            "chunk_steps": min(args.checkpoint_every, PROGRESS_EVERY)}


def _saved_section(logdir: Path, key: str, what: str) -> dict:
    """``config.json[key]`` of the run in ``logdir`` (CheckpointError if unreadable)."""
    from normrl.utils.errors import CheckpointError

    path = logdir / "config.json"
    try:
        return json.loads(path.read_text())[key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"--resume: cannot read the run's {what} from {path}: {exc}") from exc


def _check_resume_options(logdir: Path, options: dict) -> None:
    from normrl.utils.errors import CheckpointError

    saved = _saved_section(logdir, "continual", "options")
    diff = [f"{k}: saved {saved.get(k)!r}, now {options[k]!r}" for k in RESUME_KEYS if saved.get(k) != options[k]]
    if diff:
        raise CheckpointError("--resume: options differ from the saved run (" + "; ".join(diff) + ")")


def _check_resume_config(logdir: Path, config) -> None:
    """The agent config of a resumed run must equal the saved one (fields the saved
    run did not have yet are not compared)."""
    from normrl.utils.errors import CheckpointError
    from normrl.utils.run_dir import to_jsonable

    saved, now = _saved_section(logdir, "config", "agent config"), to_jsonable(config)
    diff = [f"{k}: saved {saved[k]!r}, now {now[k]!r}" for k in now if k in saved and saved[k] != now[k]]
    if diff:
        raise CheckpointError("--resume: the agent config differs from the saved run (" + "; ".join(diff) + ")")


def _agent_class(algo: str):
    from normrl.agents import DQN, PPO

    return PPO if algo == "ppo" else DQN


def run(args) -> int:
    import torch

    from normrl.envs import TaskScheduler
    from normrl.utils.errors import CheckpointError, UserError
    from normrl.utils.run_dir import write_config, write_summary

    given = config_flag_values(args)
    for flag, value, low in (("--steps-per-task", args.steps_per_task, 1), ("--cycles", args.cycles, 1),
                             ("--eval-episodes", args.eval_episodes, 0), ("--checkpoint-every", args.checkpoint_every, 1)):
        if value < low:
            raise UserError(f"{flag} must be >= {low}, got {value}")
    if args.num_envs is not None and args.num_envs < 1:
        raise UserError(f"--num-envs must be >= 1, got {args.num_envs}")
    if args.norm.lower() != "none":
        from normrl.normalization.registry import get_norm_layer

        get_norm_layer(args.norm)  # ValueError listing the valid names
    try:
        device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    except RuntimeError as exc:
        raise UserError(f"bad --device {args.device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")
    logdir = Path(args.logdir)
    has_checkpoint = (_ckpt_root(logdir) / LATEST).exists()
    if has_checkpoint and not args.resume:
        raise UserError(f"{logdir} already holds a run's checkpoints; pass --resume to continue it or choose another --logdir")

    from normrl.agents.presets import preset_config
    from normrl.envs.streams import stream_tasks

    first = stream_tasks(args.stream, args.steps_per_task, seed=args.seed)[0]
    if first.env_id is None:
        raise UserError(f"stream {args.stream!r} is a supervised (dataset) stream; normrl continual trains RL agents")
    overrides = {**given, "seed": args.seed, "norm": args.norm}
    if args.num_envs is not None:
        overrides["num_envs"] = args.num_envs
    # the first task's env preset (all tasks of a built-in stream share one env family)
    config = preset_config(args.algo, first.env_id, **overrides).validate()
    agent_cls = _agent_class(args.algo)
    options = _options(args, config.num_envs)
    restart_lr = {"auto": None, "yes": True, "no": False}[args.restart_lr]
    scheduler = TaskScheduler.from_name(
        args.stream, args.steps_per_task, args.cycles, num_envs=config.num_envs, device=device, seed=args.seed,
        reset_optimizer=args.reset_optimizer, restart_lr=restart_lr, flush_replay=args.flush_replay,
        eval_episodes=args.eval_episodes, chunk_steps=options["chunk_steps"], logdir=str(logdir),
        learn_kwargs={"progress": False})
    if getattr(config, "schedule_horizon", None) == 0:
        # The agents' default LR horizon is their first learn() call, which here is one
        # chunk: decay over each task when the schedule restarts per task, else over the
        # whole stream.
        config.schedule_horizon = args.steps_per_task if restart_lr else scheduler.total_steps()

    folder = None
    if args.resume:
        folder, saved = load_checkpoint_paths(logdir)
        _check_resume_options(logdir, options)
        _check_resume_config(logdir, config)
        try:
            scheduler.load_state_dict(saved["state"])
        except ValueError as exc:
            raise CheckpointError(f"--resume: checkpoint does not match this stream: {exc}") from exc
        if scheduler.done:
            print(f"normrl continual: the run in {logdir} is already complete")
            print(scheduler.result().format_table())
            return 0
    else:
        write_config(logdir, config, continual=options, algo=args.algo)

    env = scheduler.make_visit_env(device)
    agent = agent_cls(env, config, logdir=str(logdir))
    if folder is not None:
        agent.load(folder / "agent.pt")
        if int(agent.num_steps) != saved["agent_num_steps"]:
            raise CheckpointError(f"--resume: {folder} is inconsistent (agent at {agent.num_steps} steps, "
                                  f"scheduler saved at {saved['agent_num_steps']})")

    # Mid-visit, the agent continues on the env it was restored into. At a visit boundary
    # the next visit starts on a freshly made env, exactly as in an uninterrupted run (the
    # construction env then only carried the restored state of the previous visit's env).
    visit_env = env if (folder is None or scheduler.started) else None

    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=scheduler.total_steps(), initial=scheduler.steps_completed(), unit="step",
                   unit_scale=True, desc=f"continual {args.stream}", dynamic_ncols=True)
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        scheduler.request_stop()

    last_saved = [scheduler.steps_completed()]

    def checkpoint(sched, ag):
        # Called after every training chunk (at most PROGRESS_EVERY steps) and after each
        # visit's evaluation; saves at visit boundaries, on a signal, and every
        # --checkpoint-every steps.
        done = sched.steps_completed()
        if received or not sched.started or done - last_saved[0] >= args.checkpoint_every:
            save_checkpoint(logdir, ag, sched)
            last_saved[0] = done
        if bar is not None:
            log = getattr(ag, "episode_log", None)
            postfix = {"task": sched.current_task_id if not sched.done else "-"}
            if log is not None:
                postfix["sps"] = f"{log.last_sps:,.0f}"
                if log.recent_returns:
                    postfix["ret"] = f"{log.recent_mean_return:.2f}"
            bar.n = done
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = scheduler.run(agent, callback=checkpoint, env=visit_env)
    finally:
        if visit_env is None:
            env.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        if bar is not None:
            bar.close()
        if getattr(agent, "writer", None) is not None:
            agent.writer.flush()
    summary = {"stream": args.stream, "cycles": args.cycles, "continual": result.to_dict()}
    if hasattr(agent, "summary"):
        summary["agent"] = agent.summary()
    write_summary(logdir, summary)
    if received:
        print(f"normrl continual: stopped by signal {received[0]} at {agent.num_steps} env steps; "
              f"checkpoint saved, continue with --resume")
        return 130 if received[0] == signal.SIGINT else 143
    print(result.format_table())
    return 0
