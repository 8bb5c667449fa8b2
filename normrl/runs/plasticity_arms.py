"""Arms of the plasticity suite: a norm × interventions × optimizer settings, named by a
readable string.

Grammar of an arm string (what ``--arms`` takes, comma-separated)::

    BASE[+PART]...[@KEY=VALUE,...]

* ``BASE``: a registered norm (``none``, ``layernorm``, ``nap``, ...), ``crelu`` (no
  norm, CReLU activation) or ``fresh`` (the oracle: a fresh initialization per task);
* ``PART``: an intervention spec (``redo``, ``redo:tau=0.1,every=500``; see
  ``normrl interventions``), ``crelu`` (CReLU activation with this norm) or ``fresh``
  (this arm re-initialized at every task: ``layernorm+fresh`` is a LayerNorm oracle,
  to tell an architecture's capacity from its plasticity);
* ``KEY=VALUE`` after ``@``: optimizer settings (``optimizer``, ``lr``, ``momentum``,
  ``weight_decay``), ``nap_every``, ``crelu_rule``, or a
  :class:`~normrl.normalization.NaPProjector` keyword (``per_row=true``) for a NaP
  norm.

Examples: ``none``, ``layernorm``, ``nap``, ``none+redo``, ``none+l2_init:lam=1e-3``,
``crelu``, ``nap+redo``, ``nap@per_row=true``, ``none@optimizer=sgd,lr=0.01``. When a
list is split on commas, a piece that starts with ``key=`` continues the previous arm
(``none+redo:tau=0.1,every=500`` stays one arm). The oracle ``fresh`` and the plain
network ``none`` are in every suite.
"""
from __future__ import annotations

import inspect
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normrl.normalization.nap import NaPProjector
from normrl.normalization.registry import is_nap, list_norms
from normrl.plasticity.spec import build_interventions, parse_intervention_spec

__all__ = ["Arm", "arm_dirname", "parse_arm", "parse_arm_list", "load_arms_file", "ORACLE", "PLAIN", "with_references"]

#: the oracle arm's name: a fresh initialization (network and optimizer) per task
ORACLE = "fresh"
#: the plain network's name
PLAIN = "none"


def arm_dirname(name: str) -> str:
    """An arm's run-directory name: the arm string with ``:``, ``,``, ``@`` and other
    characters outside ``[A-Za-z0-9+._=-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9+._=-]", "_", name)
#: ``@`` keys that set learner config fields
CONFIG_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "nap_every", "crelu_rule")
_CONTINUATION = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_.]*\s*=")


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def _nap_keywords() -> list[str]:
    return [k for k in inspect.signature(NaPProjector.__init__).parameters if k not in ("self", "model", "parameters")]


@dataclass(frozen=True)
class Arm:
    """One arm: what differs from the suite's learner settings.

    Attributes:
        name: the arm string (its identity in reports and run directories).
        norm: registered norm.
        interventions: intervention spec strings.
        activation: ``"crelu"`` or None (the problem's activation).
        fresh: the oracle (a fresh network and optimizer at every task).
        options: learner config fields (``lr``, ``optimizer``, ...).
        nap_options: NaPProjector keywords.
    """

    name: str
    norm: str = "none"
    interventions: tuple[str, ...] = ()
    activation: str | None = None
    fresh: bool = False
    options: dict = field(default_factory=dict)
    nap_options: dict = field(default_factory=dict)

    @property
    def dirname(self) -> str:
        """The run-directory name (:func:`arm_dirname`)."""
        return arm_dirname(self.name)

    def config_overrides(self) -> dict:
        """The :class:`~normrl.continual.task_sequence.TaskSequenceConfig` fields this
        arm sets."""
        out: dict[str, Any] = {"norm": self.norm, "interventions": list(self.interventions), "fresh_per_task": self.fresh}
        if self.activation is not None:
            out["activation"] = self.activation
        if self.nap_options:
            out["nap_options"] = dict(self.nap_options)
        out.update(self.options)
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "norm": self.norm, "interventions": list(self.interventions), "activation": self.activation,
                "fresh": self.fresh, "options": dict(self.options), "nap_options": dict(self.nap_options)}


def parse_arm(text: str) -> Arm:
    """One arm string → :class:`Arm` (grammar in the module docstring); ``ValueError``
    naming the valid choices for an unknown norm, intervention, key or value."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an arm is a non-empty string, got {text!r}")
    name = text.strip()
    body, at, opts = name.partition("@")
    parts = [p.strip() for p in body.split("+")]
    if any(not p for p in parts):
        raise ValueError(f"arm {name!r}: empty part between '+' signs")
    base, rest = parts[0].lower(), parts[1:]
    norms = list_norms()
    fresh = base == ORACLE
    activation = None
    if fresh:
        norm = "none"
    elif base == "crelu":
        norm, activation = "none", "crelu"
    elif base in norms:
        norm = base
    else:
        raise ValueError(f"arm {name!r}: {parts[0]!r} is not a norm, 'crelu' or {ORACLE!r}; norms: {', '.join(norms)}")
    interventions = []
    for part in rest:
        if part.lower() == "crelu":
            activation = "crelu"
            continue
        if part.lower() == ORACLE:
            fresh = True
            continue
        parse_intervention_spec(part)  # validates name and keywords
        try:
            build_interventions([part])  # the intervention's own checks of its values
        except TypeError as exc:
            raise ValueError(f"arm {name!r}: {exc}") from None
        interventions.append(part)
    options: dict[str, Any] = {}
    nap_options: dict[str, Any] = {}
    if at:
        nap_keys = _nap_keywords()
        for item in opts.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"arm {name!r}: option {item.strip()!r} is not key=value")
            if key in CONFIG_KEYS:
                options[key] = _value(value)
            elif key in nap_keys:
                if not is_nap(norm):
                    raise ValueError(f"arm {name!r}: {key!r} is a NaP option, but the norm is {norm!r}")
                nap_options[key] = _value(value)
            else:
                raise ValueError(f"arm {name!r}: unknown option {key!r}; valid: {', '.join(CONFIG_KEYS + tuple(nap_keys))}")
        if "optimizer" in options and str(options["optimizer"]).lower() not in ("adam", "sgd"):
            raise ValueError(f"arm {name!r}: optimizer must be 'adam' or 'sgd', got {options['optimizer']!r}")
        _check_numbers(name, options)
    return Arm(name, norm, tuple(interventions), activation, fresh, options, nap_options)


#: numeric arm options and the least value each takes (lr must also be above it)
_NUMERIC_OPTIONS = {"lr": 0.0, "momentum": 0.0, "weight_decay": 0.0, "nap_every": 1}


def _check_numbers(name: str, options: dict) -> None:
    for key, least in _NUMERIC_OPTIONS.items():
        if key not in options:
            continue
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"arm {name!r}: {key} must be a finite number, got {value!r}")
        if value < least or (key == "lr" and value <= 0):
            raise ValueError(f"arm {name!r}: {key} must be {'>' if key == 'lr' else '>='} {least}, got {value!r}")


def parse_arm_list(text: str) -> list[Arm]:
    """A comma-separated list of arm strings (a piece starting with ``key=`` continues
    the previous arm); duplicates are a ``ValueError``."""
    pieces: list[str] = []
    for piece in text.split(","):
        if pieces and _CONTINUATION.match(piece) and "+" not in piece.split("=", 1)[0]:
            pieces[-1] += "," + piece
        elif piece.strip():
            pieces.append(piece)
    arms = [parse_arm(p) for p in pieces]
    _check_unique(arms)
    return arms


def load_arms_file(path: str | Path) -> list[Arm]:
    """Arms from a JSON file: a list of arm strings, or of objects
    ``{"name": ..., "norm": ..., "interventions": [...], "activation": ..., "options":
    {...}, "nap_options": {...}}`` (an object's ``name`` is how it is reported)."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of arms")
    arms = []
    for item in data:
        if isinstance(item, str):
            arms.append(parse_arm(item))
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {"name", "norm", "interventions", "activation", "fresh", "options", "nap_options"})
            if unknown or "name" not in item:
                raise ValueError(f"{path}: arm objects need 'name' and take norm, interventions, activation, fresh, "
                                 f"options, nap_options; got {sorted(item)}")
            norm = item.get("norm", "none")
            if norm not in list_norms():
                raise ValueError(f"{path}: arm {item['name']!r}: unknown norm {norm!r}; valid: {', '.join(list_norms())}")
            for spec in item.get("interventions", []):
                parse_intervention_spec(spec)
            unknown_opts = sorted(set(item.get("options", {})) - set(CONFIG_KEYS))
            if unknown_opts:
                raise ValueError(f"{path}: arm {item['name']!r}: unknown options {unknown_opts}; valid: {', '.join(CONFIG_KEYS)}")
            arms.append(Arm(item["name"], norm, tuple(item.get("interventions", [])), item.get("activation"),
                            bool(item.get("fresh", False)), dict(item.get("options", {})), dict(item.get("nap_options", {}))))
        else:
            raise ValueError(f"{path}: an arm is a string or an object, got {item!r}")
    _check_unique(arms)
    return arms


def _check_unique(arms: list[Arm]) -> None:
    names = [a.dirname for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"arms given twice (or differing only in punctuation): {dup}")


def with_references(arms: list[Arm]) -> list[Arm]:
    """``arms`` with the oracle (``fresh``) and the plain network (``none``) first,
    added when missing."""
    rest = [a for a in arms if a.name not in (ORACLE, PLAIN)]
    refs = [next((a for a in arms if a.name == ref), None) or parse_arm(ref) for ref in (ORACLE, PLAIN)]
    return refs + rest
