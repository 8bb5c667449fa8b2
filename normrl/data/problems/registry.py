"""The plasticity problems by name (what ``normrl plasticity --problem`` accepts)."""
from __future__ import annotations

import inspect

from normrl.data.problems.base import ContinualProblem
from normrl.data.problems.bit_flipping import SlowlyChangingRegression
from normrl.data.problems.permuted_inputs import PermutedDigits
from normrl.data.problems.random_labels import RandomLabelDigits

__all__ = ["PROBLEMS", "ALIASES", "problem_class", "make_problem"]

PROBLEMS: dict[str, type[ContinualProblem]] = {
    cls.name: cls for cls in (RandomLabelDigits, PermutedDigits, SlowlyChangingRegression)
}
#: other accepted spellings
ALIASES = {"slowly-changing-regression": "bit-flipping"}


def problem_class(name: str) -> type[ContinualProblem]:
    """The problem class called ``name`` (``_`` and ``-`` alike, case-insensitive);
    ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"problem name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid: {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[key]


def make_problem(name: str, **kwargs) -> ContinualProblem:
    """Build problem ``name`` with constructor keywords ``kwargs`` (an unknown keyword is
    a ``ValueError`` naming the valid ones)."""
    cls = problem_class(name)
    valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"problem {cls.name!r} has no option {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    return cls(**kwargs)
