"""PPO hyperparameters.

Defaults are CleanRL's ``ppo.py`` (Huang et al. 2022, "The 37 implementation details of
PPO", ICLR blog track; its CartPole-v1 settings): 4 envs x 128 steps, 4 minibatches,
4 epochs, Adam lr 2.5e-4 (eps 1e-5) annealed linearly to 0, gamma 0.99, GAE lambda
0.95, clip 0.2 with value clipping, entropy 0.01, value coefficient 0.5, gradient-norm
clip 0.5, advantage normalization, two separate 64-64 tanh MLPs. Per-environment
presets live in :mod:`normrl.agents.presets`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from normrl.agents.common.divergence import check_finite_floats, check_on_divergence


@dataclass
class PPOConfig:
    """Hyperparameters of :class:`normrl.agents.PPO` (defaults: CleanRL ``ppo.py``).

    Attributes:
        seed: seeds network initialization and the agent's sampling generator [0].
        num_seeds: train seeds ``seed, seed + 1, ..., seed + num_seeds - 1`` as one
            stacked run (the seed axis: :class:`~normrl.agents.ppo.stacked.StackedPPO`,
            ``normrl.runs.train_seeds``, ``normrl train --seeds``); each seed writes its own
            run directory ``LOGDIR/seed_<k>/``. A :class:`~normrl.agents.PPO` agent is
            one seed and refuses more. Supported: CartPole and MinAtar envs, norms
            without running statistics; refused: the others, interventions, AdaB²N,
            ``hessian_every``, ``target_kl`` [1].
        num_envs: sub-envs the CLI builds; the agent records its env's count here [4].
        num_steps: rollout length per sub-env per update [128].
        learning_rate: (peak) Adam learning rate [2.5e-4].
        lr_schedule: ``"constant"``, ``"linear"`` (to 0, CleanRL's annealing) or
            ``"cosine"`` [``"linear"``]; the clock counts optimizer updates.
        lr_warmup_updates: linear warmup length in updates [0].
        schedule_horizon: env steps over which the schedule decays; 0 means the
            ``total_steps`` of the first ``learn`` call [0].
        adam_eps: Adam epsilon (used when the optimizer is Adam) [1e-5].
        fused_adam: build the default Adam with ``fused=True`` (one kernel per
            parameter instead of about ten elementwise passes; on CPU it makes a
            Nature-CNN DQN update 1.3x faster, see docs/benchmarks.md). Numerically
            equal to the loop implementation up to float rounding [True].
        gamma: discount [0.99].
        gae_lambda: GAE lambda [0.95].
        num_minibatches: minibatches per epoch [4].
        update_epochs: passes over each rollout [4].
        norm_adv: normalize advantages per minibatch [True].
        clip_coef: policy ratio clip [0.2].
        clip_vloss: clip the value loss around the old values [True].
        ent_coef: entropy bonus coefficient [0.01].
        vf_coef: value loss coefficient [0.5].
        max_grad_norm: global gradient-norm clip; 0 disables [0.5].
        target_kl: stop the epochs early when the approximate KL exceeds it; None
            disables (one host sync per epoch when set) [None].
        norm: registered norm name for the networks (``"none"``, ``"layernorm"``,
            ``"nap"``, ...) [``"none"``].
        hidden: hidden widths of the MLPs (vector observations) [(64, 64)].
        activation: hidden nonlinearity of the MLPs [``"tanh"``].
        shared_network: one network with ``n_actions + 1`` outputs (policy logits and
            value) instead of separate actor and critic; image observations always
            share [False].
        nap_every: with a NaP norm, project after every ``nap_every`` optimizer steps [1].
        aux_loss_coef: λ of AdaB²N's auxiliary statistics loss (arXiv 2310.08855; paper
            grid 0.01-10), added to the training loss as ``λ · adab2n_aux_loss(net)``;
            0 disables [0.0].
        monitor_every: PlasticityMonitor interval in updates; 0 disables [1000].
        on_divergence: what a non-finite loss or gradient norm does: ``"stop"`` the
            run at the next check (:mod:`normrl.agents.common.divergence`) or
            ``"skip-update"`` (skip that optimizer step and count it) [``"stop"``].
        interventions: plasticity interventions as spec strings ``"name[:key=value,...]"``
            (``normrl interventions`` lists them; docs/plasticity.md), run in
            :class:`~normrl.plasticity.Compose`'s fixed order, their RNGs seeded from
            ``seed``; ``--intervention`` on the CLI, repeatable [()].
        hessian_every: log the top Hessian eigenvalue of the training loss
            (``plasticity/hessian_top_eigenvalue``, power iteration with 20
            Hessian-vector products on the update's minibatch) every ``hessian_every``
            updates; 0 disables [0].
        heavy_tail_every: log the heavy-tail exponent α of every weight layer's spectrum
            (``plasticity/heavy_tail_alpha/<layer>``, FARMS, arXiv 2506.06280) every
            ``heavy_tail_every`` updates; 0 disables [0].
        compile: run the rollout (chunks of ``rollout_chunk`` steps of policy, sampling,
            env step and buffer rows, for CartPole and MinAtar envs), GAE and each
            epoch of the update (its minibatch steps: gradients, clipping, Adam, NaP
            projection) as ``torch.compile`` graphs; CUDA graphs on CUDA. Same results
            as eager up to float rounding; the first rollout and update pay the
            compilation (seconds to minutes on CPU). Refused (ValueError) with
            optimizers other than Adam/AdamW, norms with running statistics, AdaB²N,
            plasticity interventions (docs/agents.md) [False].
        rollout_chunk: env steps per rollout chunk: the random numbers of a chunk are
            drawn at once (on CPU the same numbers as one draw per step) and, with
            ``compile``, each chunk is one compiled call [16].
    """

    seed: int = 0
    num_seeds: int = 1
    num_envs: int = 4
    num_steps: int = 128
    learning_rate: float = 2.5e-4
    lr_schedule: str = "linear"
    lr_warmup_updates: int = 0
    schedule_horizon: int = 0
    adam_eps: float = 1e-5
    fused_adam: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: Optional[float] = None
    norm: str = "none"
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    shared_network: bool = False
    nap_every: int = 1
    aux_loss_coef: float = 0.0
    monitor_every: int = 1000
    on_divergence: str = "stop"
    interventions: tuple[str, ...] = ()
    hessian_every: int = 0
    heavy_tail_every: int = 0
    compile: bool = False
    rollout_chunk: int = 16

    def validate(self) -> "PPOConfig":
        """Raise ``ValueError`` naming the first invalid field; return self."""
        check_finite_floats(self)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        check_on_divergence(self.on_divergence)
        positive = ("num_seeds", "num_envs", "num_steps", "num_minibatches", "update_epochs", "nap_every", "rollout_chunk")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"lr_schedule must be one of 'constant', 'linear', 'cosine', got {self.lr_schedule!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("clip_coef", "ent_coef", "vf_coef", "max_grad_norm", "aux_loss_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("lr_warmup_updates", "schedule_horizon", "monitor_every", "hessian_every", "heavy_tail_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"target_kl must be > 0 or None, got {self.target_kl!r}")
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(f"num_envs * num_steps ({self.num_envs * self.num_steps}) must be divisible by num_minibatches ({self.num_minibatches})")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {self.hidden!r}")
        if isinstance(self.interventions, str) or not all(isinstance(v, str) for v in self.interventions):
            raise ValueError(f"interventions must be a tuple of spec strings, got {self.interventions!r}")
        from normrl.plasticity.spec import parse_intervention_spec

        for spec in self.interventions:
            parse_intervention_spec(spec)  # ValueError naming the valid names / options
        return self
