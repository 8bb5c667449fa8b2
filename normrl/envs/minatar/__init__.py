"""MinAtar (Young & Tian 2019, arXiv 1903.03176) as batched torch environments.

Rules follow the reference ``minatar`` package 1.0.15, reimplemented from scratch as
tensor code (see docs/minatar.md). Build them with ``normrl.envs.make_env("MinAtar/Breakout", ...)``
or import the classes directly.
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "MinAtarEnv": "common",
    "BreakoutEnv": "breakout",
    "FreewayEnv": "freeway",
    "AsterixEnv": "asterix",
    "SeaquestEnv": "seaquest",
    "SpaceInvadersEnv": "space_invaders",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
