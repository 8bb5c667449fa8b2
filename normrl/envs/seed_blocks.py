"""One env per seed, presented as one batched env: the environment of a seed axis
(``PPOConfig(num_seeds=S)``, ``normrl train --seeds A-B``).

:class:`SeedBlocks` holds S envs of N sub-envs each (block k: the env of seed k, with its
own generator) and is one :class:`~normrl.envs.TensorEnv` of ``S * N`` sub-envs whose
k-th block of N sub-envs is env k. Stepped through :meth:`SeedBlocks.step` it steps the
blocks one after the other; a stacked agent steps CartPole and MinAtar blocks as one
batch of ``S * N`` sub-envs instead (:mod:`normrl.agents.common.functional_env`), with
each block's random numbers drawn from its own generator exactly as a single run of
that seed would draw them, so seed k of a stacked run sees the episodes of a single run
with seed k.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from normrl.envs.base import TensorEnv


class SeedBlocks(TensorEnv):
    """``S`` envs of ``N`` sub-envs each as one env of ``S * N`` sub-envs, block ``k`` =
    ``envs[k]`` (see the module docstring).

    Args:
        envs: the per-seed envs: same class, spaces, ``num_envs``, device and env id.

    ``state_dict()`` is the list of the blocks' states; ``blocks`` the envs themselves
    (a stacked agent's seed ``k`` trains on ``blocks[k]`` and checkpoints it).
    """

    def __init__(self, envs: Sequence[TensorEnv]):
        envs = list(envs)
        if not envs or not all(isinstance(e, TensorEnv) for e in envs):
            raise ValueError(f"SeedBlocks needs a non-empty list of TensorEnvs, got {envs!r}")
        first = envs[0]
        for k, e in enumerate(envs[1:], 1):
            same = (type(e) is type(first) and e.num_envs == first.num_envs and str(e.device) == str(first.device)
                    and e.single_observation_space == first.single_observation_space
                    and e.single_action_space == first.single_action_space and e.spec_id == first.spec_id)
            if not same:
                raise ValueError(f"SeedBlocks needs envs of one kind: env {k} ({e!r}) differs from env 0 ({first!r}) in "
                                 "class, num_envs, device, spaces or env id")
        if len({id(e) for e in envs}) != len(envs):
            raise ValueError("SeedBlocks needs distinct env objects, one per seed")
        self.blocks = envs
        self.num_seeds = len(envs)
        self.envs_per_seed = first.num_envs
        self.num_envs = self.num_seeds * self.envs_per_seed
        self.device = first.device
        self.single_observation_space = first.single_observation_space
        self.single_action_space = first.single_action_space
        self.spec_id = first.spec_id
        self._joint = None

    # -- the joint state of a batched stepper (SeedBlocksFunctional) -----------------------
    def hold_joint_state(self, state, write_back) -> None:
        """Keep ``state``, the blocks' states as one batch, until :meth:`sync_blocks`
        hands the blocks their parts with ``write_back(state)``."""
        self._joint = (state, write_back)

    def joint_state(self):
        """The joint state held by :meth:`hold_joint_state` (None when the blocks hold theirs)."""
        return None if self._joint is None else self._joint[0]

    def sync_blocks(self) -> None:
        """Give the blocks their parts of a held joint state (before reading or stepping them one by one)."""
        if self._joint is not None:
            state, write_back = self._joint
            self._joint = None
            write_back(state)

    @property
    def checkpointable(self) -> bool:
        return all(getattr(e, "checkpointable", True) for e in self.blocks)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every block (``seed``, if given, reseeds block ``k`` with ``seed + k``)."""
        self._joint = None
        return torch.cat([e.reset(None if seed is None else seed + k) for k, e in enumerate(self.blocks)])

    def step(self, actions: torch.Tensor):
        """Step block ``k`` with ``actions[k*N:(k+1)*N]``; outputs concatenated in block order."""
        self.sync_blocks()
        outs = [e.step(a) for e, a in zip(self.blocks, actions.reshape(self.num_seeds, self.envs_per_seed))]
        obs, reward, terminated, truncated = (torch.cat([o[i] for o in outs]) for i in range(4))
        info = {key: torch.cat([o[4][key] for o in outs]) for key in outs[0][4]}
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        for e in self.blocks:
            e.close()

    def state_dict(self) -> dict[str, Any]:
        self.sync_blocks()
        return {"blocks": [e.state_dict() for e in self.blocks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        blocks = state.get("blocks")
        if not isinstance(blocks, list) or len(blocks) != self.num_seeds:
            raise ValueError(f"SeedBlocks state must hold {self.num_seeds} block states")
        self._joint = None
        for e, s in zip(self.blocks, blocks):
            e.load_state_dict(s)

    def __repr__(self) -> str:
        return f"SeedBlocks(id={self.spec_id!r}, num_seeds={self.num_seeds}, envs_per_seed={self.envs_per_seed}, device={self.device})"


def make_seed_env(env_id: str, num_envs: int, seeds: Sequence[int], device: str | torch.device = "cpu", **kwargs) -> SeedBlocks:
    """``SeedBlocks([make_env(env_id, num_envs, device, seed=s, **kwargs) for s in seeds])``:
    block ``k`` is the env a single run with seed ``seeds[k]`` makes."""
    from normrl.envs.registry import make_env

    seeds = list(seeds)
    if not seeds:
        raise ValueError("make_seed_env needs at least one seed")
    return SeedBlocks([make_env(env_id, num_envs, device, seed=s, **kwargs) for s in seeds])
