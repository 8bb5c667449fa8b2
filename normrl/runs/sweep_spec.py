"""What a sweep runs: the grid of a ``normrl sweep`` (:class:`SweepSpec`), read from
command-line values or a spec file, and its expansion into named trials.

Axes: ``norm`` (list of registered norm names), ``intervention`` (list of intervention
spec strings such as ``"redo:tau=0.1,every=1000"``, or ``"none"``), ``seeds`` (``"0-4"``,
``"0,2,5"`` or a list) and ``set`` (agent config fields with one value or a list of
values, e.g. ``learning_rate = [1e-4, 3e-4]``); the grid is their Cartesian product. One
of ``env`` (one environment, ``steps`` env steps per trial) or ``stream`` (a continual
stream, ``steps_per_task`` env steps per task visit, ``cycles`` passes) says what every
trial trains on.

Trial names are readable, path-safe and stable when an axis gains values::

    <env or stream>/<norm>[_<intervention>][_<key>=<value>...]/seed_<s>

with every ``set`` key in the name (sorted by key), also the single-valued ones, so that
adding a value to a key later keeps the existing trials' names. Characters outside
``A-Z a-z 0-9 . _ = + -`` become ``-`` (``MinAtar/Breakout`` -> ``MinAtar-Breakout``,
``redo:tau=0.1,every=1000`` -> ``redo-tau=0.1-every=1000``).

Spec files (``normrl sweep --spec FILE``) hold the same fields: TOML (``.toml``, read
with the standard library's ``tomllib``), YAML (``.yaml``/``.yml``, needs PyYAML) or JSON
(``.json``; a ``sweep.json`` written by a sweep is read back from its ``"spec"``)::

    algo = "ppo"
    env = "CartPole-v1"
    steps = 20000
    norm = ["none", "nap"]
    seeds = "0-4"
    [set]
    learning_rate = [1e-4, 3e-4]
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from normrl.utils.errors import UserError
from normrl.utils.seeds import parse_seed_text

#: The agent config field an intervention spec string goes to: ``interventions=(spec,)``.
#: (The one place that maps the sweep's intervention axis onto the config.)
INTERVENTION_FIELD = "interventions"
NO_INTERVENTION = "none"
#: Config fields that have their own axis instead of ``set``.
AXIS_FIELDS = {"seed": "seeds", "norm": "norm", INTERVENTION_FIELD: "intervention"}
#: Keyword options of :func:`normrl.runs.train_stream` a spec may set (stream sweeps only).
STREAM_OPTIONS = ("eval_episodes", "reset_optimizer", "restart_lr", "flush_replay")
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def path_safe(text: str) -> str:
    """``text`` with every run of characters outside ``A-Za-z0-9._=+-`` replaced by ``-``
    (and no leading dot), usable as one path component."""
    out = _SAFE.sub("-", str(text)).lstrip(".")
    if not out:
        raise ValueError(f"{text!r} has no characters usable in a directory name")
    return out


def parse_seeds(value) -> tuple[int, ...]:
    """Seeds from ``"0-4"`` (inclusive), ``"0,2,5"``, ``"0-2,7"``, an int, or a list of
    ints; sorted, without repeats."""
    if isinstance(value, bool):
        raise ValueError(f"seeds must be integers, got {value!r}")
    if isinstance(value, int):
        items: list[int] = [value]
    elif isinstance(value, str):
        items = parse_seed_text(value)
    elif isinstance(value, (list, tuple)):
        items = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"seeds must be non-negative integers, got {v!r}")
            items.append(v)
    else:
        raise ValueError(f"bad seeds {value!r}: write e.g. 0-4, 0,2,5 or a list of integers")
    if not items:
        raise ValueError("seeds: no seed given")
    return tuple(sorted(set(items)))


def _config_hints(algo: str) -> dict[str, Any]:
    from normrl.agents.presets import config_class

    cls = config_class(algo)
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _coerce(key: str, hint, value):
    """One value of config field ``key`` (type ``hint``) from a CLI string or a file value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            return _parse_bool(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("a boolean is not an integer")
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError("not a whole number")
                return int(value)
            text = str(value).strip().replace("_", "")
            number = float(text) if re.fullmatch(r"[0-9.]+e\+?[0-9]+", text.lower()) else None
            return int(number) if number is not None and number.is_integer() else int(text)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            return float(value)
        if hint is str:
            return str(value)
        if origin is typing.Union and type(None) in args:
            if value is None or str(value).strip().lower() in ("none", "null"):
                return None
            inner = next(a for a in args if a is not type(None))
            return _coerce(key, inner, value)
        if origin is tuple and args and args[0] is int:
            if isinstance(value, str):
                parts = [p for p in re.split(r"[x\s]+", value.strip()) if p]
            elif isinstance(value, (list, tuple)):
                parts = list(value)
            else:
                parts = [value]
            return tuple(_coerce(key, int, p) for p in parts)
    except ValueError as exc:
        raise UserError(f"--set {key}: bad value {value!r} ({exc})") from None
    raise UserError(f"--set {key}: fields of type {hint} cannot be swept")


def _is_grid(hint, value) -> bool:
    """Whether a file value is a list of values to sweep (a flat list is one value of a
    tuple field such as ``hidden = [64, 64]``; ``[[64, 64], [256, 256]]`` is a grid)."""
    if not isinstance(value, (list, tuple)):
        return False
    if typing.get_origin(hint) is tuple:
        return all(isinstance(v, (list, tuple, str)) for v in value)
    return True


def _check_key(algo: str, key: str, hints: dict) -> None:
    if key in AXIS_FIELDS:
        raise UserError(f"--set {key}: use the {AXIS_FIELDS[key]} axis (--{AXIS_FIELDS[key]}) instead")
    if key == "num_seeds":
        # a trial is one run directory; stacked seeds would write LOGDIR/<trial>/seed_<k>/ instead
        raise UserError("--set num_seeds: a sweep trial trains one seed; use the seeds axis (--seeds) instead")
    if key not in hints:
        valid = ", ".join(sorted(k for k in hints if k not in AXIS_FIELDS))
        raise UserError(f"--set {key}: {algo} has no config field {key!r}; valid: {valid}")


def parse_set_value(algo: str, key: str, value) -> tuple:
    """The grid values of ``set`` key ``key``: a CLI string ``"1e-4,3e-4"`` (comma
    separates grid values; a tuple field's value is written ``64x64``), or a file value
    (a list is a grid, a scalar one value). Unknown keys raise a UserError listing the
    algorithm's config fields."""
    hints = _config_hints(algo)
    _check_key(algo, key, hints)
    hint = hints[key]
    if isinstance(value, str):
        raw = [v for v in value.split(",")]
        if any(not v.strip() for v in raw):
            raise UserError(f"--set {key}={value}: empty value in the list")
    elif _is_grid(hint, value):
        raw = list(value)
    else:
        raw = [value]
    values = tuple(_coerce(key, hint, v) for v in raw)
    if not values:
        raise UserError(f"--set {key}: no value given")
    if len(set(values)) != len(values):
        raise UserError(f"--set {key}: repeated values {list(values)}")
    return values


def format_value(value) -> str:
    """A config value as it appears in trial names: exact floats (``repr``: 0.0003,
    1e-05), ``true``/``false``, ``none``, tuples as ``64x64``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "x".join(format_value(v) for v in value)
    return str(value)


def intervention_override(algo: str, spec: str) -> dict:
    """The config overrides of one intervention axis entry: ``{}`` for ``"none"``, else
    ``{"interventions": (spec,)}`` once the spec string parses and its values pass the
    intervention's own checks (:func:`normrl.plasticity.spec.build_interventions`;
    UserError naming the valid interventions or the bad value otherwise). A config class without that field is a UserError rather
    than a silent no-op."""
    if spec == NO_INTERVENTION:
        return {}
    if INTERVENTION_FIELD not in _config_hints(algo):
        raise UserError(f"--intervention {spec!r}: this normrl's {algo} config has no "
                        f"{INTERVENTION_FIELD!r} field, so interventions cannot be swept; use --intervention none")
    from normrl.plasticity.spec import build_interventions

    try:
        build_interventions([spec])  # parses it and runs the constructor's checks of the values
    except (ValueError, TypeError) as exc:
        raise UserError(f"--intervention {spec!r}: {exc}") from None
    return {INTERVENTION_FIELD: (spec,)}


@dataclass
class Trial:
    """One grid point: its name (also its run directory under the sweep's LOGDIR), its
    axis values, and the keyword arguments of :func:`normrl.runs.sweep.run_trial`."""

    name: str
    norm: str
    intervention: str
    seed: int
    values: dict[str, Any]
    kwargs: dict[str, Any]


def _check_stream(name: str, steps_per_task: int) -> None:
    """UserError naming the valid streams when ``name`` is not one. The tasks of an env
    stream are cheap to list (no env is built); the digits streams load a dataset, so
    their names are checked by pattern only and the rest when a trial starts."""
    import re

    if isinstance(name, str) and re.fullmatch(r"(label-)?permuted-digits(:\w*)?", name):
        return
    from normrl.continual.streams import stream_tasks

    try:
        stream_tasks(name, steps_per_task)
    except ValueError as exc:
        raise UserError(f"--stream {name!r}: {exc}") from None


@dataclass
class SweepSpec:
    """The grid of a sweep (see the module docstring for the file format).

    Attributes:
        algo: ``"ppo"`` or ``"dqn"``.
        env / stream: exactly one: an env id (``CartPole-v1``, ``MinAtar/Breakout``,
            ``ALE/Pong-v5``) or a stream name (``minatar``, ``atari-default``, ...).
        steps: env steps per trial (``env`` sweeps).
        steps_per_task, cycles: env steps per task visit and passes over the stream
            (``stream`` sweeps) [cycles 1].
        norms, interventions, seeds: the axes [("none",), ("none",), (0,)].
        grid: config field -> tuple of values (``set``).
        env_kwargs: ``make_env`` keywords of every trial [none].
        checkpoint_every: env steps between checkpoints [None: the trainer's default,
            100,000 for ``env``, 50,000 for ``stream``].
        stream_options: :data:`STREAM_OPTIONS` passed to ``train_stream``.
    """

    algo: str
    env: str | None = None
    stream: str | None = None
    steps: int | None = None
    steps_per_task: int | None = None
    cycles: int = 1
    norms: tuple[str, ...] = ("none",)
    interventions: tuple[str, ...] = (NO_INTERVENTION,)
    seeds: tuple[int, ...] = (0,)
    grid: dict[str, tuple] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int | None = None
    stream_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.norms = tuple(self.norms)
        self.interventions = tuple(self.interventions)
        self.seeds = parse_seeds(list(self.seeds) if isinstance(self.seeds, (list, tuple)) else self.seeds)
        self.grid = {k: tuple(v) for k, v in sorted(self.grid.items())}
        self.validate()

    @property
    def task(self) -> str:
        """What every trial trains on: the env id or the stream name."""
        return self.env if self.env is not None else self.stream

    def validate(self) -> "SweepSpec":
        """UserError naming the first problem (checks that need no training)."""
        from normrl.agents.presets import config_class
        from normrl.normalization.registry import norm_name

        try:
            config_class(self.algo)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if (self.env is None) == (self.stream is None):
            raise UserError("give exactly one of --env (one environment) and --stream (a continual stream)")
        if self.env is not None:
            if self.steps is None:
                raise UserError("--env sweeps need --steps (env steps per trial)")
            if self.steps_per_task is not None or self.cycles != 1 or self.stream_options:
                raise UserError("--steps-per-task, --cycles and the stream options apply to --stream sweeps only")
            _positive("steps", self.steps)
            from normrl.envs.registry import ALE_PATTERN, ENV_IDS, list_envs

            if not isinstance(self.env, str) or not (self.env in ENV_IDS or ALE_PATTERN.match(self.env)):
                raise UserError(f"--env {self.env!r}: unknown env id; valid ids: {', '.join(list_envs())}")
        else:
            if self.steps is not None:
                raise UserError("--stream sweeps take --steps-per-task (env steps per task visit), not --steps")
            if self.steps_per_task is None:
                raise UserError("--stream sweeps need --steps-per-task (env steps per task visit)")
            _positive("steps-per-task", self.steps_per_task)
            _positive("cycles", self.cycles)
            _check_stream(self.stream, self.steps_per_task)
            unknown = sorted(set(self.stream_options) - set(STREAM_OPTIONS))
            if unknown:
                raise UserError(f"unknown stream option(s) {unknown}; valid: {', '.join(STREAM_OPTIONS)}")
        if self.checkpoint_every is not None:
            _positive("checkpoint-every", self.checkpoint_every)
        for axis, values in (("norm", self.norms), ("intervention", self.interventions)):
            if not values:
                raise UserError(f"--{axis}: no value given")
            if len(set(values)) != len(values):
                raise UserError(f"--{axis}: repeated values {list(values)}")
        for norm in self.norms:
            try:
                norm_name(norm)
            except (KeyError, ValueError) as exc:
                raise UserError(f"--norm {norm!r}: {exc}") from None
        for spec in self.interventions:
            intervention_override(self.algo, spec)
        hints = _config_hints(self.algo)
        for key, values in self.grid.items():
            _check_key(self.algo, key, hints)
            if not values or any(_coerce(key, hints[key], v) != v for v in values):
                raise UserError(f"--set {key}: values {list(values)} are not all of the field's type {hints[key]}")
        names = [t.name for t in self.trials()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UserError(f"grid points share a trial name after making it path-safe: {dupes[:3]}; "
                            "use values that differ in letters, digits or . _ = + -")
        return self

    def arm_name(self, norm: str, intervention: str, values: Mapping[str, Any]) -> str:
        """``<norm>[_<intervention>][_<key>=<value>...]`` (path-safe)."""
        parts = [path_safe(norm)]
        if intervention != NO_INTERVENTION:
            parts.append(path_safe(intervention))
        parts += [path_safe(f"{k}={format_value(values[k])}") for k in sorted(values)]
        return "_".join(parts)

    def trials(self) -> list["Trial"]:
        """Every grid point, seed-major (all arms of seed 0 first, so an unfinished
        sweep still has every arm's first seeds) then by norm, intervention, ``set``."""
        keys = list(self.grid)
        out = []
        for seed in self.seeds:
            for norm in self.norms:
                for intervention in self.interventions:
                    for combo in itertools.product(*(self.grid[k] for k in keys)):
                        values = dict(zip(keys, combo))
                        name = f"{path_safe(self.task)}/{self.arm_name(norm, intervention, values)}/seed_{seed}"
                        out.append(Trial(name, norm, intervention, seed, values,
                                         self._trial_kwargs(norm, intervention, seed, values)))
        return out

    def _trial_kwargs(self, norm: str, intervention: str, seed: int, values: dict) -> dict[str, Any]:
        overrides = {**values, **intervention_override(self.algo, intervention), "norm": norm, "seed": seed}
        train: dict[str, Any] = {"algo": self.algo, "overrides": overrides, "env_kwargs": dict(self.env_kwargs)}
        if self.checkpoint_every is not None:
            train["checkpoint_every"] = self.checkpoint_every
        if self.env is not None:
            train.update(env_id=self.env, steps=self.steps)
            return {"kind": "env", "train": train}
        train.update(stream=self.stream, steps_per_task=self.steps_per_task, cycles=self.cycles, **self.stream_options)
        return {"kind": "stream", "train": train}

    def to_dict(self) -> dict[str, Any]:
        """The spec in the file format (what ``sweep.json`` stores under ``"spec"``)."""
        out: dict[str, Any] = {"algo": self.algo}
        if self.env is not None:
            out.update(env=self.env, steps=self.steps)
        else:
            out.update(stream=self.stream, steps_per_task=self.steps_per_task, cycles=self.cycles)
            out.update(self.stream_options)
        out.update(norm=list(self.norms), intervention=list(self.interventions), seeds=list(self.seeds),
                   set={k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in self.grid.items()},
                   env_kwargs=dict(self.env_kwargs))
        if self.checkpoint_every is not None:
            out["checkpoint_every"] = self.checkpoint_every
        return json.loads(json.dumps(out))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepSpec":
        """A spec from the file format (keys: ``algo``, ``env``/``stream``, ``steps``,
        ``steps_per_task``, ``cycles``, ``norm``, ``intervention``, ``seeds``, ``set``,
        ``env_kwargs``, ``checkpoint_every`` and :data:`STREAM_OPTIONS`; ``norm`` and
        ``intervention`` take a string, a comma-separated string or a list)."""
        valid = ("algo", "env", "stream", "steps", "steps_per_task", "cycles", "norm", "intervention", "seeds",
                 "set", "env_kwargs", "checkpoint_every", *STREAM_OPTIONS)
        if not isinstance(data, Mapping):
            raise UserError(f"a sweep spec must be a table of fields, got {type(data).__name__}")
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise UserError(f"unknown sweep spec field(s) {unknown}; valid: {', '.join(valid)}")
        if "algo" not in data:
            raise UserError("the sweep spec needs algo (ppo or dqn)")
        algo = data["algo"]
        grid_in = data.get("set") or {}
        if not isinstance(grid_in, Mapping):
            raise UserError("set must be a table of config fields, e.g. set = {learning_rate = [1e-4, 3e-4]}")
        try:
            seeds = parse_seeds(data.get("seeds", 0))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        try:
            return cls(
                algo=algo, env=data.get("env"), stream=data.get("stream"), steps=data.get("steps"),
                steps_per_task=data.get("steps_per_task"), cycles=data.get("cycles", 1),
                norms=_names(data.get("norm", "none"), "norm"),
                interventions=_names(data.get("intervention", NO_INTERVENTION), "intervention"),
                seeds=seeds, grid={k: parse_set_value(algo, k, v) for k, v in grid_in.items()},
                env_kwargs=dict(data.get("env_kwargs") or {}), checkpoint_every=data.get("checkpoint_every"),
                stream_options={k: data[k] for k in STREAM_OPTIONS if k in data})
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def added_trials_only(self, old: "SweepSpec") -> list[str]:
        """Why this spec cannot continue the sweep of ``old`` in the same LOGDIR (empty
        when it can: every setting equal, each axis a superset of the old one's, the
        same ``set`` keys, so the old trials keep their names and settings)."""
        problems = []
        mine, theirs = self.to_dict(), old.to_dict()
        for key in sorted(set(mine) | set(theirs)):
            if key in ("norm", "intervention", "seeds", "set"):
                continue
            if mine.get(key) != theirs.get(key):
                problems.append(f"{key}: sweep has {theirs.get(key)!r}, now {mine.get(key)!r}")
        for axis, now, before in (("norm", self.norms, old.norms), ("intervention", self.interventions, old.interventions),
                                  ("seeds", self.seeds, old.seeds)):
            missing = [v for v in before if v not in now]
            if missing:
                problems.append(f"{axis}: the sweep also has {missing}")
        if set(self.grid) != set(old.grid):
            problems.append(f"set keys: sweep has {sorted(old.grid)}, now {sorted(self.grid)} (keys are part of every "
                            "trial name)")
        else:
            for key in self.grid:
                missing = [v for v in old.grid[key] if v not in self.grid[key]]
                if missing:
                    problems.append(f"set {key}: the sweep also has {[format_value(v) for v in missing]}")
        return problems


def _positive(flag: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"--{flag} must be an integer >= 1, got {value!r}")


def _names(value, axis: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in _split_top_level(value)]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        raise UserError(f"{axis}: expected a name or a list of names, got {value!r}")
    if any(not v for v in items):
        raise UserError(f"{axis}: empty name in {value!r}")
    return tuple(items)


def _split_top_level(text: str) -> list[str]:
    """Split a CLI list on commas, except commas inside an intervention's options: in
    ``"none,redo:tau=0.1,every=1000"`` the ``every=1000`` belongs to ``redo:`` (a part
    with ``=`` and no ``:`` continues the previous entry)."""
    out: list[str] = []
    for part in text.split(","):
        if out and "=" in part and ":" not in part and ":" in out[-1]:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def load_spec(path: str | Path) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML, YAML or JSON file (a ``sweep.json`` written by a
    sweep is read from its ``"spec"``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path}: not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UserError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); or write the spec as TOML") from None
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise UserError(f"{path}: not valid JSON: {exc}") from None
        if isinstance(data, Mapping) and "spec" in data and "trials" in data:
            data = data["spec"]
    else:
        raise UserError(f"{path}: unknown spec format {suffix!r}; valid: .toml, .yaml, .yml, .json")
    return SweepSpec.from_dict(data)
