"""Shared logic of the experiment scripts in ``scripts/`` (docs/scripts.md).

* :mod:`normrl.experiments.presets` — per-game Atari and MinAtar training presets with
  their sources;
* :mod:`normrl.experiments.single_game` — resumable single-game training (what
  ``scripts/train_atari.py`` and ``scripts/train_minatar.py`` run);
* :mod:`normrl.experiments.comparison` — the sequential-MinAtar norm comparison
  (NaP vs LayerNorm vs none, several seeds, runs in parallel processes);
* :mod:`normrl.experiments.results` — reading runs back (summary.json, TensorBoard
  events) and writing the results table and plots.
"""
