"""``normrl interventions``: list every registered plasticity intervention with its
paper and one-line description (docs/plasticity.md has the details)."""
from __future__ import annotations

NAME = "interventions"
HELP = "list every registered plasticity intervention, with a one-line description and its paper"


def add_arguments(parser) -> None:
    parser.add_argument("--names", action="store_true", help="print the names only")


def run(args) -> int:
    from normrl.plasticity.registry import intervention_entries

    entries = intervention_entries()
    if args.names:
        print("\n".join(e.name for e in entries))
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        print(f"{e.name:<{width}}  {e.description}" + (f"  [{e.paper}]" if e.paper else ""))
    print("\nuse: --intervention NAME[:key=value,...] (repeatable) on normrl train/continual; "
          "CReLU is an activation: --activation crelu")
    return 0
