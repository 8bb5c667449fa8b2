"""DQN hyperparameters.

Defaults are CleanRL's ``dqn.py`` (its CartPole-v1 settings; Mnih et al. 2015 with
Double DQN targets, van Hasselt et al. 2016, arXiv 1509.06461): Adam lr 2.5e-4,
buffer 10,000, gamma 0.99, hard target update (tau 1.0) every 500 env steps, batch
128, epsilon 1.0 -> 0.05 over 250,000 env steps (CleanRL: half of its 500k-step run),
learning starts at 10,000 steps, one update every 10 env steps, MSE TD loss, a 120-84
ReLU MLP. Per-environment presets live in :mod:`normrl.agents.presets`.
"""
from __future__ import annotations

from dataclasses import dataclass

from normrl.agents.common.divergence import check_finite_floats, check_on_divergence

OBS_STORAGE = ("auto", "uint8", "float32")
LOSSES = ("mse", "huber")


@dataclass
class DQNConfig:
    """Hyperparameters of :class:`normrl.agents.DQN` (defaults: CleanRL ``dqn.py``).

    Step counts are env steps (transitions, summed over sub-envs), so the settings mean
    the same for any ``num_envs``.

    Attributes:
        seed: seeds network initialization and the agent's generator [0].
        num_seeds: seeds trained as one stacked run; the seed axis is PPO-only so far,
            so DQN accepts only 1 (ValueError otherwise; train DQN seeds as separate
            runs) [1].
        num_envs: sub-envs the CLI builds; the agent records its env's count here [1].
        learning_rate: (peak) Adam learning rate [2.5e-4].
        lr_schedule: ``"constant"``, ``"linear"`` or ``"cosine"``; the clock counts
            gradient updates [``"constant"``].
        lr_warmup_updates: linear warmup length in updates [0].
        schedule_horizon: env steps over which a decaying schedule runs; 0 means the
            ``total_steps`` of the first ``learn`` call [0].
        adam_eps: Adam epsilon (used when the optimizer is Adam) [1e-8].
        fused_adam: build the default Adam with ``fused=True`` (one kernel per
            parameter instead of about ten elementwise passes; on CPU it makes a
            Nature-CNN DQN update 1.3x faster, see docs/benchmarks.md). Numerically
            equal to the loop implementation up to float rounding [True].
        buffer_size: replay capacity in transitions [10_000].
        obs_storage: replay observation dtype: ``"auto"`` (uint8 for uint8/bool
            observation spaces, else float32), ``"uint8"`` or ``"float32"`` [``"auto"``].
        gamma: discount [0.99].
        n_step: n-step returns [1].
        double_dqn: Double DQN targets (online argmax, target evaluation) [True].
        tau: target update rate: 1.0 hard copy, < 1 Polyak averaging [1.0].
        target_update_interval: env steps between target updates [500].
        batch_size: transitions per gradient update [128].
        start_eps: initial exploration epsilon [1.0].
        end_eps: final epsilon [0.05].
        exploration_steps: env steps of the linear epsilon decay [250_000].
        learning_starts: env steps before the first update [10_000].
        train_freq: env steps between rounds of updates [10].
        gradient_steps: updates per round [1].
        loss: ``"mse"`` (CleanRL) or ``"huber"`` (SB3, Dopamine) TD loss [``"mse"``].
        max_grad_norm: global gradient-norm clip; 0 disables [0.0].
        norm: registered norm name for the Q-network [``"none"``].
        hidden: hidden widths of the MLP (vector observations) [(120, 84)].
        activation: hidden nonlinearity of the MLP [``"relu"``].
        nap_every: with a NaP norm, project after every ``nap_every`` optimizer steps [1].
        aux_loss_coef: λ of AdaB²N's auxiliary statistics loss (arXiv 2310.08855; paper
            grid 0.01-10), added to the training loss as ``λ · adab2n_aux_loss(net)``;
            0 disables [0.0].
        monitor_every: PlasticityMonitor interval in updates; 0 disables [1000].
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
        log_interval: env steps between TensorBoard/progress flushes [10_000].
        save_replay: ``save`` writes the replay buffer in full (needed for exact
            resumption); False keeps checkpoints small and resumes with an empty
            buffer [True].
        on_divergence: what a non-finite loss or gradient norm does: ``"stop"`` the
            run at the next check (:mod:`normrl.agents.common.divergence`) or
            ``"skip-update"`` (skip that optimizer step and count it) [``"stop"``].
        compile: run each gradient update (target and online forwards, TD loss,
            backward, clipping, Adam, NaP projection) as one ``torch.compile`` graph;
            CUDA graphs on CUDA. Same results as eager up to float rounding; the first
            update pays the compilation. Refused (ValueError) with optimizers other
            than Adam/AdamW, norms with running statistics, AdaB²N, plasticity
            interventions [False].
    """

    seed: int = 0
    num_seeds: int = 1
    num_envs: int = 1
    learning_rate: float = 2.5e-4
    lr_schedule: str = "constant"
    lr_warmup_updates: int = 0
    schedule_horizon: int = 0
    adam_eps: float = 1e-8
    fused_adam: bool = True
    buffer_size: int = 10_000
    obs_storage: str = "auto"
    gamma: float = 0.99
    n_step: int = 1
    double_dqn: bool = True
    tau: float = 1.0
    target_update_interval: int = 500
    batch_size: int = 128
    start_eps: float = 1.0
    end_eps: float = 0.05
    exploration_steps: int = 250_000
    learning_starts: int = 10_000
    train_freq: int = 10
    gradient_steps: int = 1
    loss: str = "mse"
    max_grad_norm: float = 0.0
    norm: str = "none"
    hidden: tuple[int, ...] = (120, 84)
    activation: str = "relu"
    nap_every: int = 1
    aux_loss_coef: float = 0.0
    monitor_every: int = 1000
    interventions: tuple[str, ...] = ()
    hessian_every: int = 0
    heavy_tail_every: int = 0
    log_interval: int = 10_000
    save_replay: bool = True
    on_divergence: str = "stop"
    compile: bool = False

    def validate(self) -> "DQNConfig":
        """Raise ``ValueError`` naming the first invalid field; return self."""
        check_finite_floats(self)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        check_on_divergence(self.on_divergence)
        if self.num_seeds != 1:
            raise ValueError(f"num_seeds must be 1 for DQN (the seed axis supports PPO only so far), got {self.num_seeds!r}; "
                             "train DQN seeds as separate runs")
        for name in ("num_envs", "buffer_size", "n_step", "target_update_interval", "batch_size", "exploration_steps", "train_freq", "gradient_steps", "nap_every", "log_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("learning_starts", "lr_warmup_updates", "schedule_horizon", "monitor_every", "hessian_every", "heavy_tail_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"lr_schedule must be one of 'constant', 'linear', 'cosine', got {self.lr_schedule!r}")
        if self.obs_storage not in OBS_STORAGE:
            raise ValueError(f"obs_storage must be one of {', '.join(OBS_STORAGE)}, got {self.obs_storage!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau!r}")
        for name in ("gamma", "start_eps", "end_eps"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("max_grad_norm", "aux_loss_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.buffer_size < self.num_envs * self.n_step:
            raise ValueError(f"buffer_size ({self.buffer_size}) must hold at least num_envs * n_step ({self.num_envs * self.n_step}) transitions")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {self.hidden!r}")
        if isinstance(self.interventions, str) or not all(isinstance(v, str) for v in self.interventions):
            raise ValueError(f"interventions must be a tuple of spec strings, got {self.interventions!r}")
        from normrl.plasticity.spec import parse_intervention_spec

        for spec in self.interventions:
            parse_intervention_spec(spec)  # ValueError naming the valid names / options
        return self
