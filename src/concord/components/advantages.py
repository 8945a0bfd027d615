"""Generalised advantage estimation (Schulman et al. 2016) on padded episode batches.

The time convention is that of ``targets.td_lambda_targets``: ``values`` holds T + 1 entries per episode,
``values[:, t]`` = V(s_t), so ``values[:, 1:]`` are that function's ``next_values``. GAE returns with λ
equal the TD(λ) targets, which the tests check.
"""
from __future__ import annotations

import torch

from concord.components.targets import td_lambda_targets


def gae(rewards: torch.Tensor, values: torch.Tensor, terminated: torch.Tensor, valid_next: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns, both (B, T, K), from ``values`` (B, T + 1, K) and (B, T, K) step tensors.

    δ_t = r_t + γ(1 − d_t)V(s_{t+1}) − V(s_t) and A_t = δ_t + γλ(1 − d_t)·valid_next_t·A_{t+1};
    returns = A + V(s_t).
    Where ``valid_next`` is 0 the recursion stops, so a truncated episode's last step bootstraps from the value
    stored after it and a terminated one's ignores it. Padding is kept out with ``torch.where`` rather than
    products, so even an inf arising between arbitrary padded values (0 · inf = NaN) cannot reach a valid step.
    Padded steps (step t ≥ 1 with ``valid_next[:, t - 1]`` = 0; step 0 is always an action step) get A = 0 and
    returns = V(s_t). Pass detached values: nothing here is meant to be differentiated.
    """
    if values.shape[1] != rewards.shape[1] + 1:
        raise ValueError(f"values needs T + 1 = {rewards.shape[1] + 1} steps, got {values.shape[1]}")
    done = terminated > 0  # (B, T, K)
    chain = (valid_next > 0) & ~done  # (B, T, K): A_{t+1} feeds A_t
    step = torch.ones_like(done)  # (B, T, K): step t is an action step
    step[:, 1:] = valid_next[:, :-1] > 0
    v_now = values[:, :-1]  # (B, T, K)
    v_next = torch.where(done, torch.zeros_like(v_now), values[:, 1:])  # (B, T, K)
    deltas = rewards + gamma * v_next - v_now  # (B, T, K)
    advantages = torch.zeros_like(deltas)  # (B, T, K)
    a_next = torch.zeros_like(deltas[:, -1])  # (B, K)
    zero = torch.zeros_like(a_next)  # (B, K)
    for t in range(rewards.shape[1] - 1, -1, -1):
        a_t = deltas[:, t] + torch.where(chain[:, t], gamma * lam * a_next, zero)  # (B, K)
        a_next = torch.where(step[:, t], a_t, zero)  # (B, K)
        advantages[:, t] = a_next
    return advantages, advantages + v_now


def discounted_returns(rewards: torch.Tensor, terminated: torch.Tensor, valid_next: torch.Tensor,
                       next_values: torch.Tensor, gamma: float) -> torch.Tensor:
    """Monte-Carlo returns (B, T, K) that bootstrap from ``next_values`` only where an episode was truncated."""
    return td_lambda_targets(rewards, terminated, valid_next, next_values, gamma, 1.0)
