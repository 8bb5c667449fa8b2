"""Slowly-changing regression (the bit-flipping problem) of Dohare et al. 2024, "Loss of
plasticity in deep continual learning", Nature 632:768 (arXiv 2306.13812).

A stream of ``m``-bit inputs whose first ``f`` bits change slowly and whose last
``m − f`` bits are new random bits in every example; the target is a fixed random
network of linear threshold units (LTUs). Nothing in the target changes: only the
slowly changing bits move the input distribution, so a learner has to keep tracking
it. A small network trained by backprop does worse and worse over millions of
examples (the paper: error above a linear learner's after about 150k examples at
SGD lr 0.01), while a fresh network per period stays at its first-period error.

Exact variant, with the values of the authors' configuration
(``shibhansh/loss-of-plasticity`` ``lop/slowly_changing_regression/cfg/flip_one_prob.json``
and ``cfg/flip_one/relu.json``): ``m = 20`` bits, ``f = 15`` flipping bits, one of
them chosen uniformly and flipped every ``flip_after = 10,000`` examples
(``flip_one=True``, the paper's Extended Data Fig. 2; ``flip_one=False`` redraws all
``f`` bits instead, ``cfg/prob.json``), the other 5 bits i.i.d. uniform in every
example. Target: one hidden layer of 100 LTUs, every weight and bias ``±1`` with
probability ½, unit ``i`` outputs 1 when ``w_i·x + b_i > θ_i`` and 0 otherwise, with
``θ_i = β·(m + 1) − S_i``, ``β = 0.7`` and ``S_i = (m − Σ_j w_ij + b_i) / 2`` as the
authors' data generator computes it (``lop/nets/fix_ltu_net.py``; ``S_i`` is the number
of ``−1`` input weights, shifted by ``b_i / 2``); output ``y = v·h + c``, ``v`` and
``c`` also ``±1``; no noise.

**Task ``t``** is the ``t``-th period of ``flip_after`` examples: the flipping bits are
constant inside it and change exactly at its boundary. Everything is drawn from
generators seeded by ``(seed, purpose, t)``, so ``task(t)`` is the same whenever it is
asked for.

Default protocol (:attr:`SlowlyChangingRegression.protocol`): 300 tasks (3M examples,
``cfg/flip_one/relu.json``), a 20→5→1 ReLU network, squared error, SGD lr 0.01 (of
their 0.01 / 0.003 / 0.001), batch 1, each example seen once in stream order. The
authors initialize the learner with Kaiming-uniform (ReLU gain) input weights and zero
biases (``lop/nets/ffnn.py``); normrl's MLP keeps PyTorch's default initialization.
"""
from __future__ import annotations

import torch

from normrl.data.problems.base import ContinualProblem, Protocol, TaskData, check_count, derive_seed

__all__ = ["SlowlyChangingRegression"]


def _bits(shape, seed: int) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(seed))


class SlowlyChangingRegression(ContinualProblem):
    """Dohare et al.'s slowly-changing regression (see the module docstring).

    Args:
        num_tasks: periods of ``flip_after`` examples [300: 3M examples].
        num_bits: input bits ``m`` [20].
        num_flipping: slowly changing bits ``f`` [15].
        flip_after: examples per task [10,000].
        target_features: LTUs of the target network [100].
        beta: LTU threshold parameter ``β`` [0.7].
        flip_one: flip one bit per period [True] (False: redraw all flipping bits).
        seed: seed of the target network, the flips and the random bits [0].
    """

    name = "bit-flipping"
    kind = "regression"
    paper = "Dohare et al. 2024, Nature 632:768, arXiv 2306.13812"
    protocol = Protocol(hidden=(5,), optimizer="sgd", lr=0.01, batch_size=1, epochs=1, shuffle=False,
                        source="Dohare et al. 2024 slowly-changing regression (loss-of-plasticity cfg/flip_one/relu.json): "
                               "20->5->1 ReLU, squared error, SGD lr 0.01, batch 1, 3M examples")

    def __init__(self, num_tasks: int = 300, num_bits: int = 20, num_flipping: int = 15, flip_after: int = 10_000,
                 target_features: int = 100, beta: float = 0.7, flip_one: bool = True, seed: int = 0) -> None:
        self.num_tasks = check_count("num_tasks", num_tasks)
        self.num_bits = check_count("num_bits", num_bits)
        self.num_flipping = check_count("num_flipping", num_flipping, 0)
        if self.num_flipping > self.num_bits:
            raise ValueError(f"num_flipping must be <= num_bits ({num_bits}), got {num_flipping}")
        self.flip_after = check_count("flip_after", flip_after)
        self.target_features = check_count("target_features", target_features)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)):
            raise ValueError(f"beta must be a number, got {beta!r}")
        self.beta = float(beta)
        self.flip_one = bool(flip_one)
        self.seed = int(seed)
        self.in_dim, self.out_dim = self.num_bits, 1
        sign = lambda shape, key: (_bits(shape, derive_seed(self.seed, "target", key)) * 2 - 1).to(torch.float32)
        self.w = sign((self.target_features, self.num_bits), "w")
        self.b = sign((self.target_features,), "b")
        self.v = sign((1, self.target_features), "v")
        self.c = sign((1,), "c")
        s = (self.num_bits - self.w.sum(dim=1) + self.b) / 2
        self.theta = self.beta * (self.num_bits + 1) - s
        self._flip_states: list[torch.Tensor] = []

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The target network's output ``(N, 1)`` for bit inputs ``x`` ``(N, num_bits)``."""
        h = (x @ self.w.T + self.b > self.theta).to(torch.float32)
        return h @ self.v.T + self.c

    def flipping_bits(self, t: int) -> torch.Tensor:
        """The slowly changing bits during task ``t`` (float32 ``(num_flipping,)`` of 0/1)."""
        self._check_task(t)
        if not self.flip_one:
            return _bits((self.num_flipping,), derive_seed(self.seed, "flip", t)).to(torch.float32)
        while len(self._flip_states) <= t:
            k = len(self._flip_states)
            if k == 0:
                state = _bits((self.num_flipping,), derive_seed(self.seed, "flip", 0))
            else:
                state = self._flip_states[-1].clone()
                if self.num_flipping > 0:
                    gen = torch.Generator().manual_seed(derive_seed(self.seed, "flip", k))
                    i = int(torch.randint(0, self.num_flipping, (1,), generator=gen))
                    state[i] = 1 - state[i]
            self._flip_states.append(state)
        return self._flip_states[t].to(torch.float32)

    def task(self, t: int) -> TaskData:
        flips = self.flipping_bits(t)
        rand = _bits((self.flip_after, self.num_bits - self.num_flipping), derive_seed(self.seed, "random-bits", t))
        x = torch.cat([flips.expand(self.flip_after, -1), rand.to(torch.float32)], dim=1)
        return TaskData(x, self.target(x), {"task": t, "flipping_bits": flips.to(torch.int64).tolist()})

    def task_size(self) -> int:
        return self.flip_after

    def config(self) -> dict:
        return {"num_tasks": self.num_tasks, "num_bits": self.num_bits, "num_flipping": self.num_flipping,
                "flip_after": self.flip_after, "target_features": self.target_features, "beta": self.beta,
                "flip_one": self.flip_one, "seed": self.seed}
