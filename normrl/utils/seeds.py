"""Seed lists as users write them on the command line: ``"0-4"`` (inclusive), ``"0,2,5"``,
``"0-2,7"``."""
from __future__ import annotations

import re

_ITEM = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def parse_seed_text(text: str) -> list[int]:
    """The seeds ``text`` lists, in the order written (repeats kept; callers decide
    whether a repeat is an error). ValueError naming the accepted forms for anything
    else: an empty item, a negative or non-integer seed, or a range whose end is below
    its start."""
    seeds: list[int] = []
    for item in str(text).split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"seeds are non-negative integers and ranges like 0-4, 0,2,5 or 0-2,7; got {text!r}")
        first = int(match[1])
        last = first if match[2] is None else int(match[2])
        if last < first:
            raise ValueError(f"seed range {item.strip()!r} is empty (write low-high)")
        seeds.extend(range(first, last + 1))
    return seeds
