"""Train PPO or DQN on one Atari game (ale-py) with per-game presets; resumable.

Example: ``python scripts/train_atari.py --game Pong --algo dqn --norm nap --steps 100000``
(flags: ``--help``; presets and their sources: normrl/agents/presets.py; docs/scripts.md).
"""
import sys

from normrl.commands._game_script import main

if __name__ == "__main__":
    sys.exit(main("atari"))
