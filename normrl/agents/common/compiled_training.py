"""What the agents' compiled updates (``compile=True``) share: the ``torch.compile`` call,
the check of what they support, and :class:`FunctionalTraining`, the bridge between an
agent's network, optimizer, LR schedule and NaP projection and a pure update function.

The eager ``AgentBase._optimizer_step`` stays the reference: a compiled update computes
the same steps (the LR the schedule gives each step, backward through
``torch.func.grad``, global-norm clipping, Adam, the NaP projection every
``nap_every`` steps, the divergence guard's per-step value and, with
``on_divergence="skip-update"``, the skip of a non-finite step) inside one graph, reading and writing the optimizer's and the
network's own tensors, so results equal eager ones up to float rounding and
checkpoints are interchangeable between the two modes.

Not supported, each refused with a ValueError at construction and when ``learn``
starts: optimizers other than ``torch.optim.Adam``/``AdamW`` (one param group, no
amsgrad); networks with buffers (norms with running statistics: their training forward
writes them); AdaB²N's auxiliary loss and per-sample task ids; ``hessian_every`` (it
differentiates the eager loss twice); plasticity interventions (their ``penalty()`` and
``after_step()`` are eager code run around every optimizer step: a compiled update does
many steps per call, and running them between steps would cut the call into one per
minibatch, which is where its speed comes from). ``heavy_tail_every`` is logged after
each compiled call that crossed its interval, from the weights after the call.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from normrl.agents.common.functional_adam import AdamSettings, adam_settings, adam_state, adam_step, clip_by_global_norm


def compile_fn(fn: Callable, device: torch.device, options: dict[str, Any] | None = None) -> Callable:
    """``torch.compile(fn)`` as the agents use it: one graph (``fullgraph=True``), static
    shapes; on CUDA ``mode="reduce-overhead"`` (CUDA graphs); on CPU inductor's default
    mode with its kernels called from generated C++ (``cpp_wrapper``: the graphs here
    run hundreds of small kernels per call, and calling them from Python cost a PPO
    rollout at 4 CartPole envs 1.6x its time) plus ``options`` (e.g.
    ``{"cpp.simdlen": 1}`` for MinAtar steps)."""
    if device.type == "cuda":
        return torch.compile(fn, fullgraph=True, dynamic=False, mode="reduce-overhead")
    return torch.compile(fn, fullgraph=True, dynamic=False, options={"cpp_wrapper": True, **(options or {})})


_BY_KIND: dict = {}


def compiled_for_kind(fn: Callable, fenv) -> Callable:
    """``compile_fn(fn)`` for functions that step the functional env ``fenv`` (rollout
    chunks, evaluation blocks), one per (function, env kind, device), shared by every
    agent of the process. Each gets its own copy of ``fn``'s code object: torch counts
    its recompile limit (8 graphs) per code object, and the games of a stream would
    otherwise share one."""
    import types

    env = fenv.env
    kind = (fn, type(fenv), type(getattr(fenv, "inner", None)), type(getattr(env, "env", env)), str(env.device))
    if kind not in _BY_KIND:
        copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        _BY_KIND[kind] = compile_fn(copy, torch.device(env.device), fenv.compile_options)
    return _BY_KIND[kind]


def check_compile_support(agent, model: nn.Module) -> None:
    """Raise ValueError naming the first thing of ``agent`` a compiled update cannot
    reproduce (see the module docstring)."""
    interventions = getattr(agent, "interventions", None)
    if interventions:
        labels = getattr(interventions, "labels", None) or [type(i).__name__ for i in interventions]
        raise ValueError(
            f"compile=True does not support plasticity interventions ({', '.join(map(str, labels))}): their penalty() and "
            "after_step() run around every optimizer step in eager code, and a compiled update does all minibatch "
            "steps of a rollout in one call; use compile=False with interventions")
    adam_settings(agent.optimizer)
    projector = getattr(agent.optimizer, "projector", None)
    if getattr(projector, "output_layer_names", None):
        raise ValueError(
            f"compile=True supports a NaP projector with free output layers only (output='free', the agents' "
            f"default), got output={projector.output!r} over {projector.output_layer_names}; use compile=False")
    dtypes = {p.dtype for p in model.parameters()}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        raise ValueError(f"compile=True needs parameters of one floating dtype, got {sorted(map(str, dtypes))}")
    with_buffers = sorted({name.rsplit(".", 1)[0] or name for name, _ in model.named_buffers()})
    if with_buffers:
        raise ValueError(f"compile=True needs a network without buffers (norms with running statistics write them in "
                         f"the training forward); these modules have buffers: {', '.join(with_buffers)}; use compile=False")
    if agent.config.aux_loss_coef > 0 or agent._task_setters:
        raise ValueError("compile=True does not support AdaB²N's auxiliary loss or per-sample task ids; use compile=False")
    if getattr(agent.config, "hessian_every", 0):
        raise ValueError("compile=True does not support hessian_every (the Hessian diagnostic differentiates the eager "
                         "update's loss twice); use compile=False or hessian_every=0")


class FunctionalTraining:
    """The trained network's parameters, Adam state, LR schedule and NaP projection as
    tensors for a pure update function, and the bookkeeping of the steps it took.

    Per call of a compiled update: :meth:`tensors` (what the function reads and
    writes), :meth:`plan` (the LRs and NaP flags of its ``count`` steps, advancing the
    schedule, ``agent.num_updates`` and the projector's counter as ``count`` eager
    steps would); inside the function :meth:`flat` of the parameters and Adam moments,
    :meth:`step` for each minibatch and :meth:`write_back` at the end.

    Inside the function the parameters, their gradients and Adam's moments are each
    one flat vector (the network sees views of it, :meth:`unflat`): clipping is one
    norm and Adam a few elementwise passes over all parameters at once, instead of a
    norm and a handful of kernels per parameter tensor.
    """

    def __init__(self, agent, model: nn.Module):
        check_compile_support(agent, model)
        self.agent, self.model = agent, model
        self.names = [name for name, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        self.settings: AdamSettings = adam_settings(agent.optimizer)
        self.max_grad_norm = float(agent.config.max_grad_norm)
        # fixed when the graph is traced; a resumed run with another on_divergence builds a new agent
        self.skip_nonfinite = agent.divergence.mode == "skip-update"
        self.projection = _nap_projection(agent.optimizer, self.params)
        self.shapes = [p.shape for p in self.params]
        self.sizes = [p.numel() for p in self.params]

    def flat(self, tensors: list) -> torch.Tensor:
        """``tensors`` (one per parameter) as one flat vector."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflat(self, flat: torch.Tensor) -> list:
        """Views of ``flat`` shaped like the parameters."""
        return [chunk.view(shape) for chunk, shape in zip(flat.split(self.sizes), self.shapes)]

    def tensors(self) -> tuple[list, list, list, list]:
        """``(params, exp_avgs, exp_avg_sqs, steps)``: the parameters themselves and the
        optimizer's state tensors (created as torch's Adam would at its first step)."""
        exp_avgs, exp_avg_sqs, steps = adam_state(self.agent.optimizer, self.params)
        if self.params[0].device.type == "cuda":  # CUDA graphs write these in place
            for t in (*self.params, *exp_avgs, *exp_avg_sqs, *steps):
                torch._dynamo.mark_static_address(t)
        return self.params, exp_avgs, exp_avg_sqs, steps

    def plan(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """LRs ``(count,)`` and NaP projection flags ``(count,)`` of the next ``count``
        steps; advances the schedule, ``num_updates`` and the NaP step counter."""
        lrs, flags = self.advance(count)
        device = self.params[0].device
        return torch.tensor(lrs, dtype=torch.float32, device=device), torch.tensor(flags, device=device)

    def advance(self, count: int) -> tuple[list, list]:
        """:meth:`plan`'s LRs and flags as Python lists."""
        agent, opt = self.agent, self.agent.optimizer
        lrs = []
        for _ in range(count):
            agent.lr_schedule.apply(opt)
            lrs.append(float(opt.param_groups[0]["lr"]))
            agent.lr_schedule.step()
        agent.num_updates += count
        flags = [False] * count
        if self.projection is not None:
            start, every = opt.num_steps, opt.every
            flags = [(start + i + 1) % every == 0 for i in range(count)]
            opt.num_steps += count
        return lrs, flags

    def step(self, params: torch.Tensor, grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
             step: torch.Tensor, lr: torch.Tensor, project: torch.Tensor, loss: torch.Tensor,
             nap_targets=None):
        """Clip, Adam, then (with NaP, where ``project``) the projection, on flat vectors,
        from Adam's step count ``step`` before this step: new ``(params, exp_avg,
        exp_avg_sq, step, check)``.

        ``check`` is the divergence guard's value of this step (:meth:`DivergenceGuard.record
        <normrl.agents.common.divergence.DivergenceGuard.record>`), finite iff ``loss`` and
        the gradients are: ``loss + gradient norm`` with clipping (the norm clipping
        computes anyway, as eager ``clip_grad_norm_`` returns it), else ``loss`` where
        every gradient is finite and NaN otherwise. In ``"skip-update"`` mode a step whose
        ``check`` is not finite returns its inputs unchanged (parameters, moments and
        step count, as fused Adam's ``found_inf`` leaves them). ``nap_targets``: the
        projection's target norms (:meth:`_NaPProjection.targets`) when they are not the
        projector's own (a stacked update passes each seed's)."""
        loss = loss.detach()
        if self.max_grad_norm > 0:
            (grads,), norm = clip_by_global_norm([grads], self.max_grad_norm, return_norm=True)
            check = loss + norm
        else:
            check = torch.where(torch.isfinite(grads).all(), loss, torch.full_like(loss, float("nan")))
        new_step = step + 1
        (new_params,), (new_m,), (new_v,) = adam_step([params], [grads], [exp_avg], [exp_avg_sq], new_step, lr, self.settings)
        if self.projection is not None:
            new_params = self.flat(self.projection(self.unflat(new_params), project, nap_targets))
        if self.skip_nonfinite:
            ok = torch.isfinite(check)
            new_params, new_m, new_v = (torch.where(ok, new, old) for new, old in
                                        ((new_params, params), (new_m, exp_avg), (new_v, exp_avg_sq)))
            new_step = torch.where(ok, new_step, step)
        return new_params, new_m, new_v, new_step, check

    def record(self, checks: torch.Tensor, updates_before: int) -> None:
        """Hand the ``check`` values of the steps after update ``updates_before`` to the
        agent's divergence guard (a device copy; the guard reads them at its check)."""
        self.agent.divergence.record(checks, updates_before + 1, self.agent.num_steps)

    def log_after_call(self, updates_before: int) -> None:
        """Diagnostics the eager step logs after optimizer steps, once per compiled call
        that crossed their interval: ``heavy_tail_every`` (of the weights after the call)."""
        agent = self.agent
        every = getattr(agent.config, "heavy_tail_every", 0)
        if every and agent.writer is not None and agent.num_updates // every > updates_before // every:
            agent._log_heavy_tail(self.model)

    def write_back(self, params, exp_avgs, exp_avg_sqs, steps, new_params, new_exp_avg, new_exp_avg_sq, step) -> None:
        """Copy the flat results into the network's and optimizer's tensors (inside the graph)."""
        with torch.no_grad():
            for dsts, flat in ((params, new_params), (exp_avgs, new_exp_avg), (exp_avg_sqs, new_exp_avg_sq)):
                for dst, src in zip(dsts, self.unflat(flat)):
                    dst.copy_(src)
            for dst in steps:
                dst.copy_(step)


class _NaPProjection:
    """:meth:`normrl.normalization.NaPProjector.project` on a list of parameter tensors
    (the functional copies inside a compiled update), applied where a flag is set."""

    def __init__(self, projector, params: list):
        index = {id(p): i for i, p in enumerate(params)}
        missing = [n for n, w in zip(projector.layer_names, projector._weights) if id(w) not in index]
        if missing or any(id(p) not in index for p in projector._norm_params):
            raise ValueError(f"compile=True: the NaP projector holds tensors that are not trained parameters ({missing})")
        self.projector = projector
        self.weights = [index[id(w)] for w in projector._weights]
        self.norm_params = [index[id(p)] for p in projector._norm_params]
        # (groups, norm params) 0/1 membership: the joint (γ, β) norms as a matmul, since
        # under torch.compile, vmap of index_add into a fresh zeros tensor sums over the
        # vmapped seeds (torch 2.13)
        self.membership = None
        if self.norm_params:
            groups = len(projector._group_sizes)
            self.membership = torch.nn.functional.one_hot(projector._group_index, groups).T.to(torch.float32)

    def targets(self) -> tuple[list, torch.Tensor | None]:
        """``(weight target norms, joint (γ, β) target norms)``: the projector's recorded norms."""
        return list(self.projector._weight_norms), self.projector._joint_target

    def __call__(self, params: list, flag: torch.Tensor, targets=None) -> list:
        from normrl.normalization.nap import _TINY

        pr = self.projector
        weight_targets, joint_target = self.targets() if targets is None else targets
        out = list(params)
        for j, (i, target) in enumerate(zip(self.weights, weight_targets)):
            w = params[i]
            if pr.per_row:
                norm = torch.linalg.vector_norm(w.flatten(1), dim=1).clamp_min(_TINY).view(pr._row_shapes[j])
            else:
                norm = torch.linalg.vector_norm(w).clamp_min(_TINY)
            out[i] = torch.where(flag, w * (target.view(norm.shape) / norm) if pr.per_row else w * (target / norm), w)
        if self.norm_params:
            sq = torch.stack([torch.linalg.vector_norm(params[i]).float().square() for i in self.norm_params])
            joint = (self.membership @ sq).sqrt()
            scale = (joint_target / joint.clamp_min(_TINY))[pr._group_index]
            for k, i in enumerate(self.norm_params):
                out[i] = torch.where(flag, params[i] * scale[k].to(params[i].dtype), params[i])
        return out


def _nap_projection(optimizer, params: list) -> _NaPProjection | None:
    from normrl.normalization.nap import NaPProjector
    from normrl.normalization.projected_optimizer import ProjectedOptimizer

    if not isinstance(optimizer, ProjectedOptimizer):
        return None
    if not isinstance(optimizer.projector, NaPProjector):
        raise ValueError(f"compile=True supports the NaP projector only, got {type(optimizer.projector).__name__}")
    return _NaPProjection(optimizer.projector, params)
