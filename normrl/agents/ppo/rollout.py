"""PPO's rollout in chunks of K env steps: policy forward, Gumbel-max sampling, env step
and the buffer's rows of K steps per call of one function, which ``compile=True``
turns into one ``torch.compile`` graph per chunk length.

The randomness of a chunk is drawn before the call: the policy's uniforms ``(K, N,
n_actions)`` from the agent's generator and the env's uniforms from the env's
generator (:mod:`normrl.agents.common.functional_env`). Eager and compiled rollouts run
the same function, so they draw the same numbers on every device and differ only by
float rounding. On CPU, torch draws serially, so a chunked rollout also equals the
step-by-step loop (one draw per step) bit for bit.

Envs without a functional view (Atari, gymnasium adapters, Seaquest with resizable
lists) are stepped one call at a time by :func:`rollout_per_step`, which is never
compiled.
"""
from __future__ import annotations

import torch

from normrl.agents.common.compiled_training import compiled_for_kind
from normrl.agents.common.functional_env import FunctionalEnv, functional_env
from normrl.agents.ppo.networks import sample_actions, sample_actions_from_uniforms


def _chunk(net, fenv: FunctionalEnv, env_state, obs, policy_noise, env_noise):
    """``K = policy_noise.shape[0]`` steps of every sub-env; returns the env state and
    observation after them and the steps' rows stacked as ``(K, N, ...)``: obs,
    actions, log-probs, values, rewards, dones, truncated-only flags, final obs (None
    when the env reports none), episode returns and lengths."""
    rows: dict[str, list] = {k: [] for k in ("obs", "actions", "log_probs", "values", "rewards", "dones", "trunc",
                                             "final_obs", "ep_return", "ep_length")}
    for k in range(policy_noise.shape[0]):
        logits, value = net(obs)
        action, log_prob = sample_actions_from_uniforms(logits, policy_noise[k])
        env_state, next_obs, reward, terminated, truncated, info = fenv.step(env_state, action, env_noise[k])
        for key, val in (("obs", obs), ("actions", action), ("log_probs", log_prob), ("values", value),
                         ("rewards", reward), ("dones", info["done"]), ("trunc", truncated & ~terminated),
                         ("ep_return", info["episode_return"]), ("ep_length", info["episode_length"])):
            rows[key].append(val)
        if fenv.has_final_obs:
            rows["final_obs"].append(info["final_obs"])
        obs = next_obs
    stacked = {key: torch.stack(vals) if vals else None for key, vals in rows.items()}
    return env_state, obs, stacked


class ChunkedRollout:
    """Fills ``agent.buffer`` with one rollout, ``chunk_steps`` env steps per call.

    ``compiled``: run each chunk as a compiled graph (one per env kind and chunk
    length; compiled at first use). The functional view of the env is looked up again
    when the agent's env changes.

    What a rollout of several agents at once (the seed axis,
    :class:`~normrl.agents.ppo.stacked.StackedPPO`) changes is in two methods:
    :meth:`policy` (the network called on the observations) and :meth:`policy_noise`
    (the sampling uniforms of a chunk).
    """

    def __init__(self, agent, chunk_steps: int, compiled: bool):
        self.agent = agent
        self.chunk_steps = chunk_steps
        self.compiled = compiled
        self._env = None
        self._fenv: FunctionalEnv | None = None
        self._fn = None

    def _bind(self) -> None:
        env = self.agent.env
        if env is self._env:
            return
        self._env, self._fenv = env, functional_env(env)
        if self._fenv is None or not self.compiled:
            self._fn = _chunk
            return
        self._fn = compiled_for_kind(_chunk, self._fenv)

    def policy(self):
        """The callable ``obs -> (logits, values)`` of the rollout: the agent's network."""
        return self.agent.network

    def policy_noise(self, k: int) -> torch.Tensor:
        """The Gumbel uniforms ``(k, num_envs, n_actions)`` of ``k`` steps, from the agent's generator."""
        agent = self.agent
        return torch.rand((k, agent.buffer.num_envs, agent.n_actions), device=agent.device, generator=agent.generator)

    def collect(self, obs: torch.Tensor, final_obs_buf, trunc_buf) -> tuple[torch.Tensor, bool, object, object]:
        """One rollout into ``agent.buffer`` starting from ``obs``; returns the next
        observation, whether the env reports final observations, and the (lazily
        allocated) final-observation and truncation buffers."""
        self._bind()
        agent = self.agent
        if self._fenv is None:
            return rollout_per_step(agent, obs, final_obs_buf, trunc_buf)
        buf, fenv, net = agent.buffer, self._fenv, self.policy()
        num_steps = buf.num_steps
        if fenv.has_final_obs and final_obs_buf is None:
            final_obs_buf = torch.zeros_like(buf.obs)
            trunc_buf = torch.zeros(buf.rewards.shape, dtype=torch.bool, device=agent.device)
        buf.task_ids.fill_(agent.task_id)
        env_state = fenv.get_state()
        for t in range(0, num_steps, self.chunk_steps):
            k = min(self.chunk_steps, num_steps - t)
            policy_noise = self.policy_noise(k)
            env_noise = fenv.draw(k)
            if self._fn is not _chunk and agent.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()
            env_state, obs, rows = self._fn(net, fenv, env_state, obs, policy_noise, env_noise)
            if self._fn is not _chunk and agent.device.type == "cuda":  # CUDA-graph outputs are overwritten by the next replay
                env_state, obs = torch.utils._pytree.tree_map(torch.clone, (env_state, obs))
            fenv.set_state(env_state)
            buf.obs[t : t + k].copy_(rows["obs"])
            buf.actions[t : t + k].copy_(rows["actions"])
            buf.log_probs[t : t + k].copy_(rows["log_probs"])
            buf.values[t : t + k].copy_(rows["values"])
            buf.rewards[t : t + k].copy_(rows["rewards"])
            buf.dones[t : t + k].copy_(rows["dones"])
            if fenv.has_final_obs:
                final_obs_buf[t : t + k].copy_(rows["final_obs"])
                trunc_buf[t : t + k].copy_(rows["trunc"])
            agent.episode_log.record({"done": rows["dones"].reshape(-1), "episode_return": rows["ep_return"].reshape(-1),
                                      "episode_length": rows["ep_length"].reshape(-1)})
        return obs, fenv.has_final_obs, final_obs_buf, trunc_buf


def rollout_per_step(agent, obs: torch.Tensor, final_obs_buf, trunc_buf):
    """The rollout one ``env.step`` call at a time (envs without a functional view);
    same return as :meth:`ChunkedRollout.collect`."""
    buf, net, gen = agent.buffer, agent.network, agent.generator
    any_final = False
    for t in range(buf.num_steps):
        logits, value = net(obs)
        action, log_prob = sample_actions(logits, gen)
        next_obs, reward, terminated, truncated, info = agent.env.step(action)
        done = info["done"] if "done" in info else (terminated | truncated)
        buf.store(t, obs, action, log_prob, value, reward, done, agent.task_id)
        if "final_obs" in info:
            if final_obs_buf is None:
                final_obs_buf = torch.zeros_like(buf.obs)
                trunc_buf = torch.zeros(buf.rewards.shape, dtype=torch.bool, device=agent.device)
            if not any_final:
                trunc_buf.zero_()
                any_final = True
            final_obs_buf[t].copy_(info["final_obs"])
            torch.logical_and(truncated, ~terminated, out=trunc_buf[t])
        agent.episode_log.record(info)
        obs = next_obs
    return obs, any_final, final_obs_buf, trunc_buf
