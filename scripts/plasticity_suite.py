"""The supervised plasticity suite: a thin wrapper around ``normrl plasticity``.

    python scripts/plasticity_suite.py --problem random-labels --arms none,layernorm,nap,none+redo --seeds 0-2 --jobs 2 --logdir runs/plasticity

Every option is ``normrl plasticity``'s (``--help`` lists them; normrl/commands/plasticity.py).
"""
import sys


def main(argv=None) -> int:
    from normrl.cli import main as cli_main

    return cli_main(["plasticity", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
