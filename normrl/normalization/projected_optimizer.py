"""An optimizer wrapper that runs a weight projection after the inner optimizer's step.

:class:`ProjectedOptimizer` is the way NaP (Lyle et al. 2024, arXiv 2407.01800) plugs
into a training loop: ``opt = ProjectedOptimizer(torch.optim.Adam(model.parameters(),
lr=...), NaPProjector(model))``, then ``opt.step()`` is Adam's step followed by the
projection (every ``every`` steps [1]). It is a real ``torch.optim.Optimizer``:
``param_groups``, ``state`` and ``defaults`` *are* the inner optimizer's objects, so LR
schedulers, gradient clipping utilities and step hooks see one optimizer.

For code that builds optimizers itself from ``(params, lr=..., **kwargs)``, such as
Stable-Baselines3 (``optimizer_class(self.parameters(), lr=lr_schedule(1),
**optimizer_kwargs)``), use :class:`NaPOptimizer` (``inner=`` any optimizer class
[``torch.optim.Adam``]), :class:`NaPAdam` or :func:`ProjectedOptimizer.wrapping`.
"""
from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
from torch.optim import Optimizer

from normrl.normalization.nap import OUTPUT_DEFAULT, OUTPUT_RATE_DEFAULT, NaPProjector
from normrl.normalization.registry import NormSpec, is_nap

__all__ = ["ProjectedOptimizer", "NaPOptimizer", "NaPAdam", "NaPSGD", "build_optimizer"]

_STATE_KEY = "projected_optimizer"


class ProjectedOptimizer(Optimizer):
    """Wrap ``optimizer`` so that ``projector()`` runs after every ``every``-th step.

    Args:
        optimizer: the inner ``torch.optim.Optimizer`` (already built over the params).
        projector: a :class:`~normrl.normalization.NaPProjector` (or any object with
            ``project()``, ``state_dict()`` and ``load_state_dict()``).
        every: project after every ``every``-th step [1, as in the paper].

    Shares ``param_groups``, ``state`` and ``defaults`` with the inner optimizer (the
    same objects, also after ``load_state_dict``). ``state_dict()`` is the inner
    optimizer's dictionary plus a ``"projected_optimizer"`` entry holding the step
    counter, ``every`` and the projector's recorded norms, so a resumed run projects to
    the norms of the original initialization. The projector never touches the
    optimizer state.
    """

    def __init__(self, optimizer: Optimizer, projector: Any, every: int = 1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, ProjectedOptimizer):
            raise TypeError("optimizer is already a ProjectedOptimizer; wrap the inner optimizer once")
        if not callable(getattr(projector, "project", None)):
            raise TypeError(f"projector must have a project() method (e.g. NaPProjector), got {type(projector).__name__}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.optimizer = optimizer
        self.projector = projector
        self.every = every
        self.num_steps = 0
        # What Optimizer.__init__ sets up, minus the param groups (those are the inner's).
        torch._C._log_api_usage_once("python.optimizer")
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._warned_capturable_if_run_uncaptured = True
        self._patch_step_function()

    # The inner optimizer replaces its state/param_groups objects in load_state_dict,
    # so share them through properties rather than by copying references once.
    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self.optimizer.param_groups = value

    @property
    def state(self):
        return self.optimizer.state

    @state.setter
    def state(self, value):
        self.optimizer.state = value

    @property
    def defaults(self):
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, value):
        self.optimizer.defaults = value

    def step(self, closure: Optional[Callable[[], Any]] = None):
        """Inner step, then the projection on every ``every``-th call. Returns the
        closure's loss (as the inner optimizer does)."""
        if closure is None:
            loss = self.optimizer.step()
        else:
            loss = self.optimizer.step(closure)
        self.num_steps += 1
        if self.num_steps % self.every == 0:
            self.projector.project()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Delegate to the inner optimizer."""
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict) -> None:
        """Delegate to the inner optimizer (the new params are not projected unless the
        projector selects them)."""
        self.optimizer.add_param_group(param_group)

    def state_dict(self) -> dict:
        """Inner optimizer state dict plus the ``"projected_optimizer"`` entry."""
        for hook in self._optimizer_state_dict_pre_hooks.values():
            hook(self)
        state = self.optimizer.state_dict()
        state[_STATE_KEY] = {"num_steps": self.num_steps, "every": self.every, "projector": self.projector.state_dict()}
        for hook in self._optimizer_state_dict_post_hooks.values():
            result = hook(self, state)
            if result is not None:
                state = result
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the inner optimizer, the step counter and the projector's norms.

        A plain inner-optimizer state dict (no ``"projected_optimizer"`` entry) is
        accepted too: the step counter and the recorded norms are then kept as they are.
        """
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        state_dict = dict(state_dict)
        extra = state_dict.pop(_STATE_KEY, None)
        self.optimizer.load_state_dict(state_dict)
        if extra is not None:
            if extra["every"] != self.every:
                raise ValueError(f"saved ProjectedOptimizer used every={extra['every']}, this one every={self.every}")
            self.num_steps = int(extra["num_steps"])
            self.projector.load_state_dict(extra["projector"])
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def __getstate__(self) -> dict:
        return self.__dict__

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        inner = "\n".join("    " + line for line in repr(self.optimizer).splitlines())
        return f"{type(self).__name__}(every={self.every}, projector={self.projector!r},\n  optimizer=\n{inner}\n)"

    @staticmethod
    def wrapping(inner: type = torch.optim.Adam, **nap_kwargs) -> Callable[..., "NaPOptimizer"]:
        """An ``optimizer_class(params, lr=..., **kwargs)`` building a NaP optimizer
        around ``inner``: ``functools.partial(NaPOptimizer, inner=inner, **nap_kwargs)``.

        ``nap_kwargs`` are :class:`NaPOptimizer`'s (``model``, ``every``, ``per_row``,
        ``norm_params``, ``output``, ``output_rate``, ``include``, ``exclude``) and
        inner-optimizer keywords.
        """
        if not (isinstance(inner, type) and issubclass(inner, Optimizer)):
            raise TypeError(f"inner must be a torch.optim.Optimizer subclass, got {inner!r}")
        return functools.partial(NaPOptimizer, inner=inner, **nap_kwargs)


def unwrap_optimizer(optimizer: Optimizer) -> Optimizer:
    """The optimizer that takes the steps: the one a :class:`ProjectedOptimizer` wraps,
    else ``optimizer`` itself."""
    return optimizer.optimizer if isinstance(optimizer, ProjectedOptimizer) else optimizer


def _owner_module(params) -> Optional[nn.Module]:
    """The module whose ``.parameters()`` / ``.named_parameters()`` generator ``params``
    is, if it is one that has not started yet (how SB3 passes them)."""
    frame = getattr(params, "gi_frame", None)
    if frame is None or not inspect.isgenerator(params):
        return None
    owner = frame.f_locals.get("self")
    return owner if isinstance(owner, nn.Module) else None


class NaPOptimizer(ProjectedOptimizer):
    """A NaP optimizer built from parameters alone: ``NaPOptimizer(params, lr, inner=...)``.

    Meant for libraries that construct the optimizer themselves (Stable-Baselines3's
    ``optimizer_class`` / ``optimizer_kwargs``). It builds ``inner(params, lr=lr,
    **inner_kwargs)`` and a :class:`NaPProjector` restricted to those parameters, over
    the model found as follows:

    1. ``model=`` if given (a module holding the parameters);
    2. otherwise, when ``params`` is the unstarted generator returned by
       ``module.parameters()`` — exactly what SB3 passes (``self.parameters()``) — that
       module. So ``policy_kwargs=dict(optimizer_class=NaPAdam)`` just works, provided
       the policy's networks contain normalization layers before their nonlinearities
       (built with ``norm="nap"`` or passed through :func:`apply_nap`).

    Anything else (a list of tensors without ``model=``) raises ``ValueError``.

    Args:
        params: iterable of parameters or param-group dicts.
        lr: learning rate given to ``inner`` [None: ``inner``'s default].
        inner: the optimizer class [``torch.optim.Adam``].
        model: module owning ``params`` [None: found from ``params``].
        every, per_row, norm_params, output, output_rate, include, exclude: as in
            :class:`ProjectedOptimizer` / :class:`NaPProjector` [1, False, ``"joint"``,
            :data:`~normrl.normalization.nap.OUTPUT_DEFAULT`,
            :data:`~normrl.normalization.nap.OUTPUT_RATE_DEFAULT`, None, None].
        **inner_kwargs: forwarded to ``inner`` (betas, eps, weight_decay, ...).
    """

    def __init__(
        self,
        params,
        lr: Optional[float] = None,
        inner: type = torch.optim.Adam,
        model: Optional[nn.Module] = None,
        every: int = 1,
        per_row: bool = False,
        norm_params: str = "joint",
        output: str = OUTPUT_DEFAULT,
        output_rate: float = OUTPUT_RATE_DEFAULT,
        include=None,
        exclude=None,
        **inner_kwargs,
    ) -> None:
        if not (isinstance(inner, type) and issubclass(inner, Optimizer)):
            raise TypeError(f"inner must be a torch.optim.Optimizer subclass, got {inner!r}")
        if model is None:
            model = _owner_module(params)
            if model is None:
                raise ValueError(
                    "NaPOptimizer needs the module owning the parameters: pass model=..., or pass "
                    "module.parameters() itself (the unstarted generator, as Stable-Baselines3 does)"
                )
        elif not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if lr is not None:
            inner_kwargs["lr"] = lr
        optimizer = inner(params, **inner_kwargs)
        owned = [p for group in optimizer.param_groups for p in group["params"]]
        projector = NaPProjector(
            model, per_row=per_row, norm_params=norm_params, output=output, output_rate=output_rate,
            include=include, exclude=exclude, parameters=owned,
        )
        super().__init__(optimizer, projector, every=every)


class NaPAdam(NaPOptimizer):
    """:class:`NaPOptimizer` with ``inner=torch.optim.Adam`` (SB3: ``optimizer_class=NaPAdam``)."""

    def __init__(self, params, lr: Optional[float] = None, **kwargs) -> None:
        kwargs.setdefault("inner", torch.optim.Adam)
        super().__init__(params, lr=lr, **kwargs)


class NaPSGD(NaPOptimizer):
    """:class:`NaPOptimizer` with ``inner=torch.optim.SGD`` (``lr`` required by SGD)."""

    def __init__(self, params, lr: Optional[float] = None, **kwargs) -> None:
        kwargs.setdefault("inner", torch.optim.SGD)
        super().__init__(params, lr=lr, **kwargs)


def build_optimizer(module: nn.Module, norm: NormSpec, optimizer_class: Callable[..., Optimizer], optimizer_kwargs: dict,
                    nap_every: int = 1, nap_output: str = OUTPUT_DEFAULT, nap_options: Optional[dict] = None) -> Optimizer:
    """``optimizer_class(module.parameters(), **optimizer_kwargs)``; when ``norm`` is a
    NaP norm (:func:`~normrl.normalization.is_nap`), wrapped in
    ``ProjectedOptimizer(opt, NaPProjector(module, output=nap_output), every=nap_every)``
    so hidden weights return to their initial norms after every ``nap_every``-th step
    (arXiv 2407.01800). The one place where the agents and the online learner decide
    about NaP: the agents pass ``nap_output="free"`` (Q-values and state values are
    regression outputs whose range a projected head would cap), the supervised online
    learner keeps the projector's default
    (:data:`~normrl.normalization.nap.OUTPUT_DEFAULT`, docs/results/nap_output_layer.md).
    ``nap_options``: further :class:`NaPProjector` keywords (``per_row``, ``norm_params``,
    ``output``, ...)."""
    opt = optimizer_class(module.parameters(), **optimizer_kwargs)
    if is_nap(norm) and not hasattr(opt, "projector"):
        opt = ProjectedOptimizer(opt, NaPProjector(module, **{"output": nap_output, **(nap_options or {})}), every=nap_every)
    return opt
