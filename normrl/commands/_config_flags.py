"""Command-line flags generated from the agents' config dataclasses.

``normrl train``, ``normrl continual`` and the per-game scripts share them: every field of
:class:`~normrl.agents.PPOConfig` / :class:`~normrl.agents.DQNConfig` that has no
top-level flag of its own is a flag (``learning_rate`` -> ``--learning-rate``; booleans
as ``--x/--no-x``; tuples as several values; the interventions as a repeatable ``--intervention SPEC``).
Unset flags keep the env's preset.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing

# Config fields that have their own top-level flag.
_TOP_LEVEL = {"seed", "num_seeds", "num_envs", "norm"}


def _optional_float(text: str):
    if text.lower() in ("none", "null"):
        return None
    return float(text)


def add_config_flags(parser: argparse.ArgumentParser, classes: dict | None = None) -> None:
    """One flag per field of the config dataclasses in ``classes`` (``{algo: cls}``,
    default PPOConfig and DQNConfig); a field both have is one flag. Help shows each
    algorithm's default. Read the given ones back with :func:`config_flag_values`."""
    if classes is None:
        from normrl.agents.dqn.config import DQNConfig
        from normrl.agents.ppo.config import PPOConfig

        classes = {"ppo": PPOConfig, "dqn": DQNConfig}
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
        flag = "--" + name.replace("_", "-")
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is tuple and args and args[0] is str:
            # a tuple of strings (interventions) is a repeatable singular flag
            flag = flag.removesuffix("s")
            kwargs.update(action="append", metavar="SPEC")
        elif origin is tuple:
            kwargs.update(type=int, nargs="+", metavar="N")
        elif origin is typing.Union and type(None) in args:
            kwargs.update(type=_optional_float, metavar="X|none")
        else:
            kwargs.update(type=hint, metavar=name.upper())
        kwargs["help"] = ", ".join(f"{algo}: {d!r}" for algo, d in defaults.items())
        if name == "interventions":
            kwargs["help"] = ("plasticity intervention NAME[:key=value,...], repeatable, e.g. "
                              "--intervention redo:tau=0.1,every=1000 (`normrl interventions` lists them) [none]")
        group.add_argument(flag, **kwargs)


def config_flag_values(args) -> dict:
    """The config fields given as generated flags (see :func:`add_config_flags`), checked
    against ``args.algo``'s config class (a flag of the other algorithm is a UserError)."""
    from normrl.agents.presets import config_class
    from normrl.utils.errors import UserError

    own = {f.name for f in dataclasses.fields(config_class(args.algo))}
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}
    foreign = sorted(set(given) - own)
    if foreign:
        raise UserError(f"--{foreign[0].replace('_', '-')} is not a {args.algo} option")
    for key in ("hidden", "interventions"):
        if key in given:
            given[key] = tuple(given[key])
    return given
