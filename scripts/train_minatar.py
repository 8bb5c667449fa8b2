"""Train PPO or DQN on one MinAtar game with per-game presets; resumable.

Example: ``python scripts/train_minatar.py --game breakout --algo ppo --norm nap --steps 100000``
(flags: ``--help``; presets and their sources: normrl/agents/presets.py; docs/scripts.md).
"""
import sys

from normrl.commands._game_script import main

if __name__ == "__main__":
    sys.exit(main("minatar"))
