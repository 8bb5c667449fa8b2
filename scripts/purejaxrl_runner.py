#!/usr/bin/env python
"""Time PureJaxRL's own ``ppo.py`` / ``dqn.py`` (luchris429/purejaxrl) from a user's
checkout; the JAX half of ``scripts/bench_purejaxrl.py``.

Runs in the separate JAX virtual environment (never normrl's): it imports nothing of
normrl and is started by ``bench_purejaxrl.py`` as a subprocess pinned to one core.
Their files are imported unchanged from ``<purejaxrl-dir>/purejaxrl``; what this
script adds lives only in this process:

* **gymnax >= 1.0 step API.** gymnax 1.0 returns ``(obs, state, reward, terminated,
  truncated, info)`` and puts ``terminated`` / ``truncated`` / ``final_observation`` into
  ``info``; PureJaxRL was written against the older ``(obs, state, reward, done, info)``
  with ``done = terminated or truncated`` and ``info = {"discount": ...}``.
  :class:`FiveTupleStep` wraps the env that ``gymnax.make`` returns to give the old
  form back (the extra ``info`` entries are dropped: PureJaxRL stacks ``info`` into its
  metrics every step, and a MinAtar ``final_observation`` would add 400 values per env
  step of memory traffic its original never had). With gymnax < 1.0 it passes through.
* **dqn.py** imports ``LogWrapper`` / ``FlattenObservationWrapper`` from
  ``gymnax.wrappers.purerl``, which in gymnax 1.0 return the 6-tuple that dqn.py does
  not unpack; they are swapped for PureJaxRL's own 5-tuple ``wrappers.py`` classes.
  ``jax.tree_map`` (removed in jax 0.6, used by dqn.py) is aliased to ``jax.tree.map``.
* **Imports the benchmark never calls.** PureJaxRL's ``wrappers.py`` imports ``brax``
  and ``navix`` (for its Brax / Navix wrappers) and ``dqn.py`` imports ``wandb`` (for
  optional logging): when they are not installed, empty placeholder modules are put in
  ``sys.modules`` so the import succeeds; nothing of them is used.

Timing: ``jax.jit(make_train(config))`` (``jax.jit(jax.vmap(make_train(config)))`` over
``num_seeds`` keys, PureJaxRL's NUM_SEEDS pattern) is called twice with the same key;
the first call includes tracing and XLA compilation, the second is the run alone
(PureJaxRL's README reports the latter). Prints one JSON object on the last line.

    python scripts/purejaxrl_runner.py --purejaxrl-dir DIR --spec '{"algo": "ppo", ...}'
    python scripts/purejaxrl_runner.py --purejaxrl-dir DIR --check
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from importlib import metadata
from pathlib import Path

REQUIRED = ("jax", "gymnax", "flax", "optax", "distrax", "chex")  # what ppo.py imports (chex: wrappers.py)
REQUIRED_DQN = ("flashbax",)
PLACEHOLDERS = {  # module -> attributes PureJaxRL's files take from it at import time
    "brax": {},
    "brax.envs": {},
    "brax.envs.wrappers": {},
    "brax.envs.wrappers.training": {"EpisodeWrapper": None, "AutoResetWrapper": None},
    "navix": {},
    "wandb": {},
}


def missing_modules(names) -> list[str]:
    import importlib.util

    return [n for n in names if importlib.util.find_spec(n) is None]


def install_placeholders() -> list[str]:
    """Empty modules for the unused imports (see the module docstring); returns their names."""
    import importlib.util

    placed = []
    for name, attrs in PLACEHOLDERS.items():
        root = name.split(".")[0]
        if root not in placed and importlib.util.find_spec(root) is not None:
            continue
        module = types.ModuleType(name)
        module.__doc__ = "placeholder: imported by PureJaxRL for features this benchmark does not use"
        for attr in attrs:
            setattr(module, attr, _unused(f"{name}.{attr}"))
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
        if root not in placed:
            placed.append(root)
    return placed


def _unused(name):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} is a placeholder (not installed); the benchmark does not use it")

    return fail


class FiveTupleStep:
    """A gymnax env whose ``step`` returns PureJaxRL's ``(obs, state, reward, done,
    info)`` with ``done = terminated | truncated`` (gymnax < 1.0's form)."""

    DROPPED_INFO = ("terminated", "truncated", "final_observation")

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    def step(self, key, state, action, params=None):
        out = self._env.step(key, state, action, params)
        if len(out) == 5:  # gymnax < 1.0 already has this form
            return out
        obs, state, reward, terminated, truncated, info = out
        info = {k: v for k, v in info.items() if k not in self.DROPPED_INFO}
        return obs, state, reward, terminated | truncated, info


def gymnax_five_tuple():
    """A stand-in for the ``gymnax`` module inside PureJaxRL's files: ``make`` wraps
    the env in :class:`FiveTupleStep`; everything else is gymnax's."""
    import gymnax

    shim = types.ModuleType("gymnax_five_tuple")
    shim.__dict__.update({k: v for k, v in vars(gymnax).items() if not k.startswith("__")})

    def make(env_id, **kwargs):
        env, params = gymnax.make(env_id, **kwargs)
        return FiveTupleStep(env), params

    shim.make = make
    return shim


def load_purejaxrl(purejaxrl_dir: Path, algo: str):
    """Import ``ppo`` or ``dqn`` from the checkout with the adaptations above."""
    src = purejaxrl_dir / "purejaxrl"
    sys.path.insert(0, str(src))
    install_placeholders()
    import jax

    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map
    import importlib

    module = importlib.import_module(algo)
    module.gymnax = gymnax_five_tuple()
    if algo == "dqn":
        import wrappers  # PureJaxRL's own 5-tuple LogWrapper / FlattenObservationWrapper

        module.LogWrapper = wrappers.LogWrapper
        module.FlattenObservationWrapper = wrappers.FlattenObservationWrapper
    return module


def final_return(algo: str, metrics, fraction: float) -> float:
    """Mean training return over the last ``fraction`` of iterations (at least one).

    PPO: per update, the mean return of the episodes that finished in that update's
    rollout (``returned_episode`` mask), averaged over the updates that had any.
    DQN: dqn.py's own ``returns`` metric (per env step, the mean over envs of each
    env's last finished episode's return)."""
    import numpy as np

    if algo == "ppo":
        ret = np.asarray(metrics["returned_episode_returns"], dtype=np.float64)
        done = np.asarray(metrics["returned_episode"], dtype=bool)
        if ret.ndim == 3:  # (updates, steps, envs) -> one seed axis
            ret, done = ret[None], done[None]
        updates = ret.shape[1]
        k = max(1, int(round(updates * fraction)))
        ret, done = ret[:, -k:], done[:, -k:]
        per_update = (ret * done).sum(axis=(2, 3)) / np.maximum(done.sum(axis=(2, 3)), 1)
        have = done.any(axis=(2, 3))
        return float(per_update[have].mean()) if have.any() else float("nan")
    ret = np.asarray(metrics["returns"], dtype=np.float64)
    ret = ret[None] if ret.ndim == 1 else ret
    k = max(1, int(round(ret.shape[1] * fraction)))
    return float(ret[:, -k:].mean())


def versions() -> dict:
    out = {}
    for name in ("jax", "jaxlib", "gymnax", "flax", "optax", "distrax", "chex", "flashbax", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run(purejaxrl_dir: Path, spec: dict) -> dict:
    algo = spec["algo"]
    module = load_purejaxrl(purejaxrl_dir, algo)
    import jax
    import numpy as np

    config = dict(spec["config"])
    seeds = int(spec.get("num_seeds", 1))
    train = module.make_train(config)  # fills NUM_UPDATES (and MINIBATCH_SIZE)
    key = jax.random.PRNGKey(int(spec.get("seed", 0)))
    if seeds > 1:
        fn, arg = jax.jit(jax.vmap(train)), jax.random.split(key, seeds)
    else:
        fn, arg = jax.jit(train), key
    times = []
    out = None
    for _ in range(2):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(arg))
        times.append(time.perf_counter() - t0)
    if algo == "ppo":
        steps_per_seed = int(config["NUM_UPDATES"]) * int(config["NUM_STEPS"]) * int(config["NUM_ENVS"])
    else:
        steps_per_seed = int(config["NUM_UPDATES"]) * int(config["NUM_ENVS"])
    steps = steps_per_seed * seeds
    metrics = jax.tree_util.tree_map(np.asarray, out["metrics"])
    return {
        "steps": steps,
        "first_call_s": times[0],
        "run_s": times[1],
        "compile_s": max(0.0, times[0] - times[1]),
        "sps": steps / times[1],
        "sps_incl_compile": steps / times[0],
        "final_return": final_return(algo, metrics, float(spec.get("return_fraction", 0.1))),
        "devices": [str(d) for d in jax.devices()],
        "versions": versions(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--purejaxrl-dir", required=True, type=Path, help="a checkout of luchris429/purejaxrl")
    p.add_argument("--spec", help="JSON: algo (ppo|dqn), config (PureJaxRL's config dict), num_seeds, seed, return_fraction")
    p.add_argument("--check", action="store_true", help="only check that the checkout and the packages are there")
    args = p.parse_args(argv)
    src = args.purejaxrl_dir / "purejaxrl"
    if not (src / "ppo.py").is_file():
        print(f"error: {src / 'ppo.py'} not found: --purejaxrl-dir must be a checkout of luchris429/purejaxrl", file=sys.stderr)
        return 2
    missing = missing_modules(REQUIRED)
    if missing:
        print(f"error: missing in this Python ({sys.executable}): {', '.join(missing)}; "
              f"pip install jax gymnax flax optax distrax chex flashbax", file=sys.stderr)
        return 2
    if args.check:
        print(json.dumps({"ok": True, "dqn": (src / "dqn.py").is_file() and not missing_modules(REQUIRED_DQN),
                          "missing_for_dqn": missing_modules(REQUIRED_DQN), "versions": versions()}))
        return 0
    spec = json.loads(args.spec)
    if spec["algo"] not in ("ppo", "dqn"):
        print(f"error: algo must be 'ppo' or 'dqn', got {spec['algo']!r}", file=sys.stderr)
        return 2
    print(json.dumps(run(args.purejaxrl_dir, spec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
