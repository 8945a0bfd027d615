"""Bootstrapped return targets."""
from __future__ import annotations

import torch


def td_lambda_targets(rewards: torch.Tensor, terminated: torch.Tensor, valid_next: torch.Tensor,
                      next_values: torch.Tensor, gamma: float, td_lambda: float) -> torch.Tensor:
    """TD(λ) returns G_t = r_t + γ(1 − d_t)[(1 − λ) V(t+1) + λ G_{t+1}], all of shape (B, T, K).

    ``next_values[:, t]`` is the bootstrap value of the state after step t, ``terminated`` d_t marks a true
    terminal state (no bootstrap), ``valid_next[:, t]`` is 1 when step t+1 was an action step of the same
    episode; where it is 0 (the episode ended by a time limit, or padding) G_{t+1} is replaced by V(t+1), so a
    truncated episode bootstraps from its last state. λ = 0 gives one-step targets.
    """
    if td_lambda == 0.0:  # one-step targets need no backward recursion
        return rewards + gamma * (1.0 - terminated) * next_values
    returns = torch.zeros_like(next_values)
    g_next = next_values[:, -1]
    for t in range(rewards.shape[1] - 1, -1, -1):
        blend = (1.0 - td_lambda) * next_values[:, t] + td_lambda * g_next
        boot = torch.where(valid_next[:, t] > 0, blend, next_values[:, t])
        returns[:, t] = rewards[:, t] + gamma * (1.0 - terminated[:, t]) * boot
        g_next = returns[:, t]
    return returns
