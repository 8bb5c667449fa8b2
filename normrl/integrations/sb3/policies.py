"""SB3 policies with normalized hidden layers: features extractors built from normrl's
networks and :func:`norm_policy_kwargs` (any registered norm, including NaP with SB3's
optimizer wrapped in the weight projection)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import gymnasium as gym
import torch
import torch.nn as nn
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from normrl.normalization.registry import is_nap

__all__ = ["norm_policy_kwargs", "NormMLPExtractor", "NormNatureCNNExtractor"]

ALGOS = ("ppo", "a2c", "dqn")
FEATURES = ("mlp", "nature_cnn")


class NormMLPExtractor(BaseFeaturesExtractor):
    """Flatten, then ``normrl.networks.MLP`` hidden layers ``Linear -> Norm -> activation``.

    Args:
        observation_space: the (flattenable) observation space.
        norm: any registered norm name/class/partial, ``"nap"``, or None [``"layernorm"``].
        net_arch: hidden widths [(64, 64), SB3's MlpPolicy default]; the features are the
            last hidden layer (``features_dim = net_arch[-1]``).
        activation: hidden nonlinearity name [``"tanh"``, SB3's PPO/A2C default].
        norm_kwargs: extra keywords for every norm layer [None].
    """

    def __init__(self, observation_space: gym.Space, norm: Any = "layernorm", net_arch: Sequence[int] = (64, 64),
                 activation: str = "tanh", norm_kwargs: Optional[dict] = None):
        from normrl.networks import MLP

        net_arch = tuple(net_arch)
        if not net_arch:
            raise ValueError("net_arch must list at least one hidden width for the MLP features extractor")
        super().__init__(observation_space, features_dim=net_arch[-1])
        self.flatten = nn.Flatten()
        self.mlp = MLP(get_flattened_obs_dim(observation_space), None, hidden=net_arch, norm=norm, activation=activation,
                       norm_kwargs=norm_kwargs)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.flatten(observations.float()))


class NormNatureCNNExtractor(BaseFeaturesExtractor):
    """``normrl.networks.NatureCNN`` torso (3 convs + Linear 512, each ``-> Norm ->
    activation``), optionally followed by more hidden Linear layers.

    Args:
        observation_space: a channel-first image ``Box`` (SB3 transposes channel-last
            images with ``VecTransposeImage`` before the policy sees them).
        norm: any registered norm, ``"nap"``, or None [``"layernorm"``]; conv norms use
            the channels-first layout.
        net_arch: extra hidden widths after the 512 features [(): SB3's CnnPolicy].
        activation: hidden nonlinearity name [``"relu"``].
        norm_kwargs: extra keywords for every norm layer [None].

    SB3 already scales uint8 images to [0, 1] (``normalize_images=True``); the torso
    passes float input through unchanged.
    """

    def __init__(self, observation_space: gym.Space, norm: Any = "layernorm", net_arch: Sequence[int] = (),
                 activation: str = "relu", norm_kwargs: Optional[dict] = None):
        from normrl.networks import MLP, NatureCNN

        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(f"NormNatureCNNExtractor needs a (C, H, W) image Box space, got {observation_space}")
        if not is_image_space(observation_space, check_channels=False, normalized_image=True):
            raise ValueError(f"NormNatureCNNExtractor needs a channel-first image space, got {observation_space}")
        net_arch = tuple(net_arch)
        c, h, w = observation_space.shape
        cnn = NatureCNN(c, None, norm=norm, activation=activation, input_size=(h, w), norm_kwargs=norm_kwargs)
        super().__init__(observation_space, features_dim=net_arch[-1] if net_arch else cnn.features_dim)
        self.cnn = cnn
        self.mlp = (MLP(cnn.features_dim, None, hidden=net_arch, norm=norm, activation=activation, norm_kwargs=norm_kwargs)
                    if net_arch else nn.Identity())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.cnn(observations))


def norm_policy_kwargs(
    norm: Any = "layernorm",
    net_arch: Optional[Sequence[int]] = None,
    features: str = "mlp",
    *,
    algo: str = "ppo",
    activation: Optional[str] = None,
    norm_kwargs: Optional[dict] = None,
    nap_every: int = 1,
    optimizer_class: Optional[type] = None,
    optimizer_kwargs: Optional[dict] = None,
    share_features_extractor: Optional[bool] = None,
) -> dict[str, Any]:
    """``policy_kwargs`` for SB3's ``PPO``/``A2C``/``DQN`` with normalized hidden layers.

    Example::

        model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs=norm_policy_kwargs("nap"))
        model = DQN("CnnPolicy", atari_env, policy_kwargs=norm_policy_kwargs("nap", features="nature_cnn", algo="dqn"))

    Args:
        norm: registered norm (``normrl norms`` lists them), class, partial, ``"nap"``
            or None [``"layernorm"``].
        net_arch: hidden widths of the MLP [``features="mlp"``: (64, 64), SB3's
            default; ``"nature_cnn"``: (), i.e. the CNN's 512 features feed the heads].
        features: ``"mlp"`` (flattened vector observations) or ``"nature_cnn"`` (images;
            use with ``CnnPolicy``) [``"mlp"``].
        algo: ``"ppo"``, ``"a2c"`` or ``"dqn"`` [``"ppo"``]; selects SB3's defaults
            (activation, optimizer) and whether actor and critic get separate torsos.
        activation: hidden nonlinearity [MLP: ``"tanh"`` for PPO/A2C, ``"relu"`` for DQN
            (SB3's defaults); CNN: ``"relu"``].
        norm_kwargs: extra keywords of every norm layer [None].
        nap_every: with ``"nap"``, project after every ``nap_every``-th optimizer step [1].
        optimizer_class, optimizer_kwargs: the inner optimizer [SB3's: Adam with
            ``eps=1e-5`` for PPO, RMSprop(alpha=0.99, eps=1e-5) for A2C, Adam for DQN].
            With ``"nap"`` it is wrapped: ``optimizer_class`` becomes
            ``ProjectedOptimizer.wrapping(inner=..., every=nap_every, output="free")`` (a
            NaP optimizer that finds the policy from the ``self.parameters()`` SB3 passes
            it; the heads stay free, value and Q heads being regression outputs).
        share_features_extractor: PPO/A2C only [MLP: False (separate actor and critic
            torsos, like SB3's MlpPolicy); CNN: True (like CnnPolicy)].

    Returns a new dict; the policy's own ``net_arch`` is ``[]`` (the hidden layers are
    the features extractor).
    """
    _check_choices(algo, features, nap_every, norm)
    arch, act, extractor, share = _extractor_defaults(features, algo, net_arch, activation, share_features_extractor)
    kwargs: dict[str, Any] = {
        "features_extractor_class": extractor,
        "features_extractor_kwargs": {"norm": norm, "net_arch": arch, "activation": act, "norm_kwargs": norm_kwargs},
        "net_arch": [],
    }
    if algo != "dqn":
        kwargs["share_features_extractor"] = share
    elif share_features_extractor is not None:
        raise ValueError("share_features_extractor applies to PPO/A2C only (DQN has one network)")
    kwargs.update(_optimizer_kwargs(algo, norm, nap_every, optimizer_class, optimizer_kwargs))
    return kwargs


def _check_choices(algo: str, features: str, nap_every: int, norm: Any) -> None:
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if not isinstance(nap_every, int) or isinstance(nap_every, bool) or nap_every < 1:
        raise ValueError(f"nap_every must be a positive int, got {nap_every!r}")
    from normrl.normalization.registry import norm_name

    norm_name(norm)  # fail now, with the valid names, not inside SB3


def _extractor_defaults(features: str, algo: str, net_arch, activation, share_features_extractor):
    """``(net_arch, activation, extractor class, share)`` with SB3's defaults filled in."""
    if features == "mlp":
        arch = (64, 64) if net_arch is None else tuple(net_arch)
        act = activation or ("relu" if algo == "dqn" else "tanh")
        share = False if share_features_extractor is None else share_features_extractor
        return arch, act, NormMLPExtractor, share
    arch = () if net_arch is None else tuple(net_arch)
    share = True if share_features_extractor is None else share_features_extractor
    return arch, activation or "relu", NormNatureCNNExtractor, share


def _optimizer_kwargs(algo: str, norm: Any, nap_every: int, optimizer_class, optimizer_kwargs) -> dict[str, Any]:
    """SB3's ``optimizer_class``/``optimizer_kwargs`` entries: SB3's default optimizer per
    algorithm, wrapped in the NaP projection for NaP norms; empty when SB3's own
    default applies unchanged."""
    inner_kwargs = dict(optimizer_kwargs or {})
    inner = optimizer_class
    if inner is None:
        if algo == "a2c":
            inner = torch.optim.RMSprop
            for k, v in {"alpha": 0.99, "eps": 1e-5, "weight_decay": 0}.items():
                inner_kwargs.setdefault(k, v)
        else:
            inner = torch.optim.Adam
            if algo == "ppo":
                inner_kwargs.setdefault("eps", 1e-5)
    if is_nap(norm):
        from normrl.normalization.projected_optimizer import ProjectedOptimizer

        # Heads stay free: SB3's value and Q heads are regression outputs whose range a
        # projected head would cap (docs/results/nap_output_layer.md).
        wrapped = ProjectedOptimizer.wrapping(inner=inner, every=nap_every, output="free")
        return {"optimizer_class": wrapped, "optimizer_kwargs": inner_kwargs}
    if optimizer_class is not None or algo == "a2c" or inner_kwargs:
        return {"optimizer_class": inner, "optimizer_kwargs": inner_kwargs}
    return {}
