"""PPO's clipped surrogate loss (Schulman et al. 2017, arXiv 1707.06347) with the
value-clipping and entropy terms of CleanRL's ``ppo.py``."""
from __future__ import annotations

import torch


def categorical_log_prob_entropy(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log pi(a|s), H(pi(.|s)))`` of a categorical policy given by ``logits``."""
    log_p = torch.log_softmax(logits, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy


def ppo_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip_coef: float = 0.2,
    clip_vloss: bool = True,
    ent_coef: float = 0.01,
    vf_coef: float = 0.5,
    norm_adv: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss ``pg_loss - ent_coef * entropy + vf_coef * v_loss`` and its parts.

    * ``pg_loss = mean(max(-A r, -A clip(r, 1-c, 1+c)))`` with ``r = exp(logp - old_logp)``;
      ``A`` normalized to zero mean, unit std (``+1e-8``) when ``norm_adv``;
    * ``v_loss = 0.5 mean(max((V-R)^2, (old_V + clip(V-old_V, -c, c) - R)^2))`` when
      ``clip_vloss``, else ``0.5 mean((V-R)^2)``;
    * diagnostics: ``approx_kl = mean((r-1) - log r)`` (Schulman's k3 estimator) and
      ``clipfrac = mean(|r-1| > c)``.
    All returned values are tensors (no host sync).
    """
    log_probs, entropy = categorical_log_prob_entropy(logits, actions)
    log_ratio = log_probs - old_log_probs
    ratio = log_ratio.exp()
    if norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg_loss = torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)).mean()
    if clip_vloss:
        v_clipped = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
        v_loss = 0.5 * torch.max((values - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((values - returns) ** 2).mean()
    entropy_mean = entropy.mean()
    loss = pg_loss - ent_coef * entropy_mean + vf_coef * v_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return loss, {"policy_loss": pg_loss.detach(), "value_loss": v_loss.detach(), "entropy": entropy_mean.detach(), "approx_kl": approx_kl, "clipfrac": clipfrac}
