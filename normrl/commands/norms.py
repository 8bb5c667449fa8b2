"""``normrl norms``: list every registered normalization layer with its paper."""
from __future__ import annotations

NAME = "norms"
HELP = "list every registered normalization layer, with a one-line description and its paper"


def add_arguments(parser) -> None:
    parser.add_argument("--names", action="store_true", help="print only the names, one per line")


def run(args) -> int:
    from normrl.normalization.registry import norm_entries

    entries = norm_entries()
    if args.names:
        print("\n".join(e.name for e in entries))
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        paper = f"  [{e.paper}]" if e.paper else ""
        print(f"{e.name:<{width}}  {e.description}{paper}")
    return 0
