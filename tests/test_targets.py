"""TD(λ) targets against hand computations."""
from __future__ import annotations

import torch

from concord.components.targets import td_lambda_targets


def _t(*rows):
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(-1)  # (B, T, 1)


def test_one_step_targets():
    r, d = _t([1.0, 2.0, 3.0]), _t([0.0, 0.0, 1.0])
    valid_next = _t([1.0, 1.0, 0.0])
    v = _t([10.0, 20.0, 30.0])  # V(s1), V(s2), V(s3)
    g = td_lambda_targets(r, d, valid_next, v, gamma=0.5, td_lambda=0.0)
    assert torch.allclose(g, _t([1 + 0.5 * 10, 2 + 0.5 * 20, 3.0]))


def test_lambda_returns_terminated_episode_by_hand():
    gamma, lam = 0.9, 0.8
    r, d, valid_next = _t([1.0, 0.0, 2.0]), _t([0.0, 0.0, 1.0]), _t([1.0, 1.0, 0.0])
    v = _t([5.0, 4.0, 100.0])  # the value after the terminal step must be ignored
    g2 = 2.0
    g1 = 0.0 + gamma * ((1 - lam) * 4.0 + lam * g2)
    g0 = 1.0 + gamma * ((1 - lam) * 5.0 + lam * g1)
    g = td_lambda_targets(r, d, valid_next, v, gamma, lam)
    assert torch.allclose(g, _t([g0, g1, g2]))


def test_truncated_episode_bootstraps_and_padding_is_isolated():
    gamma, lam = 0.9, 0.5
    # episode 0: length 2 ended by a time limit (not terminal) then one padded step; episode 1: length 3, terminal.
    r = _t([1.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    d = _t([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    valid_next = _t([1.0, 0.0, 0.0], [1.0, 1.0, 0.0])
    v = _t([2.0, 3.0, 50.0], [1.0, 1.0, 7.0])
    g = td_lambda_targets(r, d, valid_next, v, gamma, lam)
    g01 = 1.0 + gamma * 3.0  # last step of a truncated episode: bootstrap from V(s2)
    g00 = 1.0 + gamma * ((1 - lam) * 2.0 + lam * g01)
    assert torch.allclose(g[0, :2], torch.tensor([[g00], [g01]]))
    g12 = 1.0
    g11 = 0.0 + gamma * ((1 - lam) * 1.0 + lam * g12)
    g10 = 0.0 + gamma * ((1 - lam) * 1.0 + lam * g11)
    assert torch.allclose(g[1], torch.tensor([[g10], [g11], [g12]]))


def test_lambda_one_is_monte_carlo_for_terminal_episodes():
    r, d, valid_next = _t([1.0, 2.0, 3.0]), _t([0.0, 0.0, 1.0]), _t([1.0, 1.0, 0.0])
    v = torch.randn(1, 3, 1)
    g = td_lambda_targets(r, d, valid_next, v, gamma=0.5, td_lambda=1.0)
    assert torch.allclose(g[0, 0, 0], torch.tensor(1 + 0.5 * 2 + 0.25 * 3))
