"""Drive the reference ``minatar`` package (1.0.15) as a test oracle for the torch games.

The reference is used only to check rules; nothing here is shipped. Pieces:

* :class:`ScriptedRandom` stands in for the reference's ``numpy.random.RandomState``
  and answers ``rand``/``randint`` with uniforms we choose, keyed by the name of the
  reference function that draws (``"act"`` is ``minatar.Environment.act``'s sticky
  draw; game draws come from e.g. ``"_spawn_entity"``, ``"_randomize_cars"``,
  ``"reset"``). ``randint(low, high)`` maps a uniform to an integer exactly like
  :func:`normrl.envs.minatar.common.uniform_to_int`, so both sides see the SAME
  random outcomes.
* A per-game :class:`Adapter` converts between a reference game object
  (``Environment.env``) and one row of our batched state, and turns one row of our
  draws into the reference's script.
* Generic checks used by every game's tests: :func:`collect_reference_states`,
  :func:`check_one_step`, :func:`check_lockstep`, :func:`reference_episodes`,
  :func:`torch_episodes`.
"""
from __future__ import annotations

import copy
import sys
from typing import Any, Callable

import numpy as np
import torch
from minatar import Environment

from normrl.envs.minatar.common import MinAtarEnv, uniform_to_int


class ScriptedRandom:
    """A ``RandomState`` look-alike whose draws are scripted per calling function.

    ``load({"act": [u], "_spawn_entity": [u1, u2, u3]})`` queues uniforms; each
    ``rand``/``randint`` call pops the next entry of its caller's queue (an array of
    the call's ``size`` or a scalar). Unconsumed entries are dropped by the next
    ``load``; a draw with an empty queue raises, so an unexpected reference draw fails
    the test loudly.
    """

    def __init__(self):
        self.script: dict[str, list] = {}

    def load(self, script: dict[str, list]) -> None:
        self.script = {k: list(v) for k, v in script.items()}

    def _next(self, size) -> np.ndarray:
        caller = sys._getframe(2).f_code.co_name
        queue = self.script.get(caller)
        if not queue:
            raise AssertionError(f"reference drew from {caller!r} but no draw was scripted for it")
        u = np.asarray(queue.pop(0), dtype=np.float32)
        expected = () if size is None else tuple(np.atleast_1d(size))
        if u.shape != expected:
            raise AssertionError(f"scripted draw for {caller!r} has shape {u.shape}, reference asked for {expected}")
        return u

    def rand(self, *size):
        u = self._next(size if size else None)
        return u.astype(np.float64) if size else float(u)

    def randint(self, low, high=None, size=None):
        if high is None:
            low, high = 0, low
        u = self._next(size)
        k = uniform_to_int(torch.from_numpy(np.array(u, dtype=np.float32)), int(low), int(high)).numpy()
        return k if size is not None else int(k)


class Adapter:
    """Per-game glue between the reference game object and our batched state."""

    game: str
    env_cls: type[MinAtarEnv]

    def read_reference(self, ref_game) -> dict[str, Any]:
        """Our state row (plain numbers/arrays) equal to the reference game's state."""
        raise NotImplementedError

    def comparable(self, state_row: dict[str, Any]) -> dict[str, Any]:
        """A state row in the form the checks compare (default: as is). A game whose
        state can hold one game state in several ways (e.g. ring buffers, where a list's
        order lives in slot ranks) maps both sides to one canonical form here."""
        return state_row

    def step_script(self, step_draws: dict[str, np.ndarray]) -> dict[str, list]:
        """The reference script (caller -> uniforms) for one row of our step draws."""
        raise NotImplementedError

    def reset_script(self, reset_draws: dict[str, np.ndarray]) -> dict[str, list]:
        """The reference script for one row of our reset draws."""
        raise NotImplementedError


def make_reference(game: str, *, sticky_action_prob: float = 0.0, difficulty_ramping: bool = True, seed: int | None = None):
    """A reference ``minatar.Environment``; seeded numpy randomness if ``seed`` is given."""
    ref = Environment(game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping)
    if seed is not None:
        ref.seed(seed)
        ref.reset()
    return ref


def install_script(ref: Environment) -> ScriptedRandom:
    """Replace the reference's randomness (sticky and game) with one :class:`ScriptedRandom`."""
    scripted = ScriptedRandom()
    ref.random = scripted
    ref.env.random = scripted
    return scripted


def reference_obs(ref_game) -> np.ndarray:
    """The reference game's observation as float32 ``(C, 10, 10)``."""
    return np.ascontiguousarray(np.transpose(ref_game.state(), (2, 0, 1))).astype(np.float32)


def row(tree, i: int):
    """Row ``i`` of a (nested) dict of batched tensors, as numpy."""
    if isinstance(tree, dict):
        return {k: row(v, i) for k, v in tree.items()}
    return tree[i].cpu().numpy()


def stack_rows(env: MinAtarEnv, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """A batched state for ``env`` from per-env rows, with ``env.state``'s dtypes."""
    return {
        k: torch.as_tensor(np.stack([np.asarray(r[k]) for r in rows])).to(device=env.device, dtype=v.dtype)
        for k, v in env.state.items()
    }


def collect_reference_states(game: str, n_states: int, seed: int, *, difficulty_ramping: bool = True,
                             max_gap: int = 30, policy: Callable[[np.random.RandomState, list[int]], int] | None = None):
    """Deep copies of reference game objects reached by random play (seeded).

    Between snapshots the reference plays 1..``max_gap`` steps with uniformly random
    minimal-set actions (or ``policy(rng, minimal_set)``); finished episodes reset.
    """
    ref = make_reference(game, difficulty_ramping=difficulty_ramping, seed=seed)
    rng = np.random.RandomState(seed + 1)
    actions = ref.minimal_action_set()
    states = []
    while len(states) < n_states:
        for _ in range(rng.randint(1, max_gap + 1)):
            a = actions[rng.randint(len(actions))] if policy is None else policy(rng, actions)
            _, terminal = ref.act(a)
            if terminal:
                ref.reset()
        states.append(copy.deepcopy(ref.env))
    return states


def _assert_row_equal(ours: dict[str, Any], theirs: dict[str, Any], context: str) -> None:
    assert set(ours) == set(theirs), context
    for k in theirs:
        np.testing.assert_array_equal(np.asarray(ours[k]), np.asarray(theirs[k]), err_msg=f"{context}: state[{k!r}]")


def check_one_step(adapter: Adapter, ref_games: list, *, seed: int = 0, difficulty_ramping: bool = True,
                   actions: list[int] | None = None, events: Callable[..., dict[str, bool]] | None = None
                   ) -> dict[str, int]:
    """From each reference state, one step of the rules on both sides must agree.

    All states are loaded into one batched env and advanced with one
    ``transition`` call; each reference copy is advanced with ``Env.act`` using the
    same action and the same random outcomes. Observation, reward, terminal and the
    whole next state are compared. Returns counts (steps, rewards, terminals) so the
    caller can assert the sample covered the interesting events; ``events(before,
    after, action, step_draws_row)`` (reference games before and after the step) adds
    the game's own event counts (each a dict of flags, summed).
    """
    n = len(ref_games)
    env = adapter.env_cls(num_envs=n, seed=seed, full_action_space=True, difficulty_ramping=difficulty_ramping)
    rows = [adapter.read_reference(g) for g in ref_games]
    state = stack_rows(env, rows)
    gen = np.random.RandomState(seed)
    if actions is None:
        actions = [int(a) for a in gen.randint(6, size=n)]
    draws = env.sample_draws()
    next_state, reward, terminal = env.transition(state, torch.tensor(actions, device=env.device), draws["step"])
    obs = env.observe(next_state)
    counts = {"steps": n, "rewards": 0, "terminals": 0}
    for i, before in enumerate(ref_games):
        game = copy.deepcopy(before)
        scripted = ScriptedRandom()
        game.random = scripted
        scripted.load(adapter.step_script(row(draws["step"], i)))
        r, term = game.act(actions[i])
        ctx = f"{adapter.game} state {i} action {actions[i]}"
        assert float(reward[i]) == float(r), ctx
        assert bool(terminal[i]) == bool(term), ctx
        np.testing.assert_array_equal(obs[i, : env.n_channels].cpu().numpy(), reference_obs(game), err_msg=ctx)
        _assert_row_equal(adapter.comparable(row(next_state, i)), adapter.comparable(adapter.read_reference(game)), ctx)
        counts["rewards"] += int(r != 0)
        counts["terminals"] += int(bool(term))
        for name, happened in (events(before, game, actions[i], row(draws["step"], i)) if events else {}).items():
            counts[name] = counts.get(name, 0) + int(happened)
    return counts


def check_lockstep(adapter: Adapter, *, num_envs: int, steps: int, seed: int, sticky_action_prob: float = 0.1,
                   difficulty_ramping: bool = True, full_action_space: bool = False) -> dict[str, int]:
    """Run our batched env and ``num_envs`` reference envs side by side on random actions.

    Every step both sides get the same actions and the same random outcomes (sticky
    uniforms, game draws, reset draws); observations, rewards and terminals must agree
    on every step, across automatic resets. Returns event counts.
    """
    env = adapter.env_cls(num_envs=num_envs, seed=seed, sticky_action_prob=sticky_action_prob,
                          difficulty_ramping=difficulty_ramping, full_action_space=full_action_space)
    refs, scripts = [], []
    # Our reset() draws the first episodes from the generator: replay those draws too.
    env.generator.manual_seed(seed)
    init_draws = env._uniforms(env.reset_draw_shapes)
    env.reset(seed=seed)
    for i in range(num_envs):
        ref = make_reference(adapter.game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping)
        scripted = install_script(ref)
        scripted.load(adapter.reset_script(row(init_draws, i)))
        ref.reset()
        refs.append(ref)
        scripts.append(scripted)
    obs = env.observe()
    for i in range(num_envs):
        np.testing.assert_array_equal(obs[i, : env.n_channels].cpu().numpy(), reference_obs(refs[i].env))
    action_set = env.action_set.cpu().numpy()
    gen = np.random.RandomState(seed)
    counts = {"steps": 0, "rewards": 0, "terminals": 0, "sticky": 0}
    for t in range(steps):
        actions = gen.randint(env.single_action_space.n, size=num_envs)
        draws = env.sample_draws()
        obs, reward, terminated, truncated, info = env.step_with_draws(torch.as_tensor(actions), draws)
        for i, ref in enumerate(refs):
            script = {"act": [row(draws["sticky"], i)], **adapter.step_script(row(draws["step"], i))}
            scripts[i].load(script)
            counts["sticky"] += int(row(draws["sticky"], i) < sticky_action_prob)
            r, term = ref.act(int(action_set[actions[i]]))
            ctx = f"{adapter.game} env {i} step {t}"
            assert float(reward[i]) == float(r), ctx
            assert bool(terminated[i]) == bool(term), ctx
            assert not bool(truncated[i]), ctx
            if term:
                scripts[i].load(adapter.reset_script(row(draws["reset"], i)))
                ref.reset()
            np.testing.assert_array_equal(obs[i, : env.n_channels].cpu().numpy(), reference_obs(ref.env), err_msg=ctx)
            counts["rewards"] += int(r != 0)
            counts["terminals"] += int(bool(term))
        counts["steps"] += num_envs
    return counts


def reference_episodes(game: str, n_episodes: int, seed: int, *, action_probs: list[float] | None = None,
                       difficulty_ramping: bool = True, sticky_action_prob: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of ``n_episodes`` reference episodes under a random policy.

    The policy samples the minimal action set with ``action_probs`` (default uniform),
    with the package's own seeded randomness (nothing scripted).
    """
    ref = make_reference(game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping, seed=seed)
    actions = ref.minimal_action_set()
    probs = np.full(len(actions), 1 / len(actions)) if action_probs is None else np.asarray(action_probs, dtype=float)
    cum = np.cumsum(probs)
    policy_rng = np.random.RandomState(seed + 12345)
    returns, lengths = [], []
    for _ in range(n_episodes):
        ref.reset()
        total, length, terminal = 0.0, 0, False
        while not terminal:
            a = actions[min(int(np.searchsorted(cum, policy_rng.rand(), side="right")), len(actions) - 1)]
            r, terminal = ref.act(a)
            total += r
            length += 1
        returns.append(total)
        lengths.append(length)
    return np.asarray(returns), np.asarray(lengths)


def torch_episodes(env: MinAtarEnv, seed: int, *, action_probs: list[float] | None = None,
                   max_steps: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of the FIRST episode of every sub-env of ``env`` under a
    random policy over its action space (``action_probs``, default uniform).

    Only first episodes are kept so that short episodes are not over-represented.
    """
    n = env.num_envs
    k = env.single_action_space.n
    probs = torch.full((k,), 1.0 / k) if action_probs is None else torch.tensor(action_probs, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    env.reset(seed=seed)
    returns = torch.zeros(n)
    lengths = torch.zeros(n, dtype=torch.int64)
    finished = torch.zeros(n, dtype=torch.bool)
    for _ in range(max_steps):
        actions = torch.multinomial(probs, n, replacement=True, generator=gen)
        _, _, _, _, info = env.step(actions.to(env.device))
        done = info["done"].cpu()
        first = done & ~finished
        returns = torch.where(first, info["episode_return"].cpu(), returns)
        lengths = torch.where(first, info["episode_length"].cpu(), lengths)
        finished |= done
        if bool(finished.all()):
            return returns.numpy(), lengths.numpy()
    raise AssertionError(f"not every sub-env finished an episode within {max_steps} steps")
