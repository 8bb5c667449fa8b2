"""normrl inside Stable-Baselines3: PPO on CartPole-v1 with a normalized policy (NaP by
default) and plasticity metrics in the TensorBoard run. The README's SB3 section in
runnable form (docs/sb3.md shows what it prints).

    python scripts/sb3_example.py                         # NaP, 20k steps (~10 s on one core)
    python scripts/sb3_example.py --norm layernorm --steps 50000 --logdir runs/sb3
    tensorboard --logdir runs/sb3                         # plasticity/* beside rollout/*

Needs the ``sb3`` extra (stable-baselines3 >= 2.0; tested with 2.9.2).
"""
from __future__ import annotations

import argparse

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from normrl.integrations.sb3 import PlasticityCallback, norm_policy_kwargs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="PPO on CartPole-v1 with a normrl norm inside SB3")
    parser.add_argument("--norm", default="nap", help="any name from `normrl norms` [nap]")
    parser.add_argument("--steps", type=int, default=20_000, help="environment steps [20000]")
    parser.add_argument("--every", type=int, default=50, help="log plasticity metrics every N optimizer steps [50]")
    parser.add_argument("--logdir", default="runs/sb3", help="TensorBoard directory [runs/sb3]")
    parser.add_argument("--seed", type=int, default=0, help="seed [0]")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    env = make_vec_env("CartPole-v1", n_envs=8, seed=args.seed)
    # rl-zoo's CartPole-v1 PPO hyperparameters (10 epochs instead of 20)
    model = PPO(
        "MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=10, ent_coef=0.0,
        learning_rate=lambda f: 1e-3 * f, clip_range=lambda f: 0.2 * f,
        policy_kwargs=norm_policy_kwargs(args.norm), tensorboard_log=args.logdir, seed=args.seed, device="cpu",
    )
    print(model.policy.pi_features_extractor)
    print("optimizer:", type(model.policy.optimizer).__name__)
    plasticity = PlasticityCallback(every=args.every)
    model.learn(args.steps, callback=plasticity, tb_log_name=f"ppo_{args.norm}")

    mean, std = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=4, seed=args.seed + 100), n_eval_episodes=20,
                                deterministic=True)
    print(f"mean return over 20 episodes: {mean:.1f} +/- {std:.1f}")
    last = plasticity.last_logged or {}
    for tag in ("plasticity/dormant_ratio/all", "plasticity/srank/all", "plasticity/effective_rank/all",
                "plasticity/weight_norm/all", "plasticity/effective_lr/all", "plasticity/policy_entropy"):
        if tag in last:
            print(f"{tag:<34} {last[tag]:.4g}")
    print(f"TensorBoard run: {model.logger.get_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
