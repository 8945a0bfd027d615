"""GAE against hand computations, and its returns against TD(λ) targets."""
from __future__ import annotations

import torch

from concord.components.advantages import discounted_returns, gae
from concord.components.targets import td_lambda_targets

GAMMA, LAM = 0.9, 0.8  # γλ = 0.72


def _t(*rows):
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(-1)  # (B, T, 1)


def _terminated_episode():
    """A 3-step episode ending in a true terminal; the value after the terminal (100) must be ignored."""
    r, d, valid_next = _t([1.0, 0.0, 2.0]), _t([0.0, 0.0, 1.0]), _t([1.0, 1.0, 0.0])
    v = _t([0.5, 1.0, 1.5, 100.0])  # (1, T + 1, 1)
    return r, v, d, valid_next


def test_terminated_episode_by_hand():
    # δ2 = 2 − 1.5 = 0.5, δ1 = 0 + 0.9·1.5 − 1 = 0.35, δ0 = 1 + 0.9·1 − 0.5 = 1.4
    # A2 = 0.5, A1 = 0.35 + 0.72·0.5 = 0.71, A0 = 1.4 + 0.72·0.71 = 1.9112
    adv, ret = gae(*_terminated_episode(), GAMMA, LAM)
    assert torch.allclose(adv, _t([1.9112, 0.71, 0.5]))
    assert torch.allclose(ret, _t([2.4112, 1.71, 2.0]))


def test_lambda_zero_gives_one_step_td_errors():
    adv, ret = gae(*_terminated_episode(), GAMMA, 0.0)
    assert torch.allclose(adv, _t([1.4, 0.35, 0.5]))
    assert torch.allclose(ret, _t([1.9, 1.35, 2.0]))  # r_t + γ V(s_{t+1}), no bootstrap at the terminal


def test_truncated_episode_bootstraps_from_the_value_after_its_last_step():
    # length 2 ended by a time limit in T = 3: the last step bootstraps from V(s2) = 4; step 2 is padding.
    r, d, valid_next = _t([1.0, 1.0, 1e6]), _t([0.0, 0.0, 0.0]), _t([1.0, 0.0, 0.0])
    v = _t([2.0, 3.0, 4.0, 1e6])
    adv, ret = gae(r, v, d, valid_next, GAMMA, LAM)
    # δ1 = 1 + 0.9·4 − 3 = 1.6 (A1 = δ1: no recursion beyond), δ0 = 1 + 0.9·3 − 2 = 1.7, A0 = 1.7 + 0.72·1.6
    assert torch.allclose(adv[:, :2], _t([2.852, 1.6]))
    assert torch.allclose(ret[:, :2], _t([4.852, 4.6]))
    assert adv[0, 2, 0] == 0.0


def _padded_batch(pad: float):
    """Episode 0: length 2, terminated, then padding; episode 1: length 4 = T, truncated. ``pad`` fills padding."""
    p = pad
    r = _t([1.0, 2.0, p, p], [0.0, 1.0, 0.0, 1.0])
    d = _t([0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0])
    valid_next = _t([1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    v = _t([1.0, 0.5, p, -p, p], [1.0, 1.0, 2.0, 2.0, 3.0])  # v[0, 2] follows a terminal: ignored too
    return r, v, d, valid_next


def test_padded_batch_by_hand_and_padding_does_not_leak():
    adv, ret = gae(*_padded_batch(1e6), GAMMA, LAM)
    # episode 0: δ1 = 2 − 0.5 = 1.5, δ0 = 1 + 0.9·0.5 − 1 = 0.45, A0 = 0.45 + 0.72·1.5 = 1.53
    assert torch.allclose(adv[0, :2], torch.tensor([[1.53], [1.5]]))
    assert torch.allclose(ret[0, :2], torch.tensor([[2.53], [2.0]]))
    # episode 1: δ = (−0.1, 1.8, −0.2, 1 + 0.9·3 − 2 = 1.7); A3 = 1.7, A2 = 1.024, A1 = 2.53728, A0 = 1.7268416
    assert torch.allclose(adv[1], torch.tensor([[1.7268416], [2.53728], [1.024], [1.7]]))
    assert torch.allclose(ret[1], torch.tensor([[2.7268416], [3.53728], [3.024], [3.7]]))
    assert torch.equal(adv[0, 2:], torch.zeros(2, 1))


def test_padding_near_float_max_gives_no_nan_or_inf():
    clean, _ = gae(*_padded_batch(0.0), GAMMA, LAM)
    adv, ret = gae(*_padded_batch(3e38), GAMMA, LAM)  # padded δ overflow to ±inf
    assert torch.isfinite(adv).all() and torch.isfinite(ret).all()
    assert torch.equal(adv, clean)


def test_lambda_one_is_monte_carlo_for_a_terminated_episode():
    r, d, valid_next = _t([1.0, 2.0, 3.0]), _t([0.0, 0.0, 1.0]), _t([1.0, 1.0, 0.0])
    v = torch.randn(1, 4, 1, generator=torch.Generator().manual_seed(0))
    mc = _t([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0])
    _, ret = gae(r, v, d, valid_next, 0.5, 1.0)
    assert torch.allclose(ret, mc)
    assert torch.allclose(discounted_returns(r, d, valid_next, v[:, 1:], 0.5), mc)


def test_discounted_returns_bootstrap_a_truncated_episode():
    r, d, valid_next = _t([1.0, 2.0]), _t([0.0, 0.0]), _t([1.0, 0.0])
    g = discounted_returns(r, d, valid_next, _t([7.0, 10.0]), 0.5)
    assert torch.allclose(g, _t([1 + 0.5 * 2 + 0.25 * 10, 2 + 0.5 * 10]))


def _random_batch(gen: torch.Generator, b: int = 6, t: int = 7, k: int = 3):
    """Random episodes: lengths 1..T, each terminated or truncated, padding filled with huge finite numbers."""
    lengths = torch.randint(1, t + 1, (b,), generator=gen)  # (B,)
    steps = torch.arange(t)  # (T,)
    mask = (steps < lengths[:, None]).float()  # (B, T)
    valid_next = torch.cat([mask[:, 1:], torch.zeros(b, 1)], dim=1)  # (B, T)
    ends = torch.rand(b, generator=gen) < 0.5  # (B,) terminated, else truncated
    terminated = ((steps == lengths[:, None] - 1) & ends[:, None]).float()  # (B, T)
    expand = lambda x: x[..., None].expand(b, t, k).contiguous()  # (B, T) -> (B, T, K)
    mask, valid_next, terminated = expand(mask), expand(valid_next), expand(terminated)
    rewards = torch.randn(b, t, k, generator=gen)  # (B, T, K)
    values = torch.randn(b, t + 1, k, generator=gen)  # (B, T + 1, K)
    used_v = torch.arange(t + 1) < (lengths + (~ends).long())[:, None]  # (B, T + 1): V(s_L) only if truncated
    used_v = used_v[..., None].expand(b, t + 1, k)  # (B, T + 1, K)
    rewards = torch.where(mask > 0, rewards, torch.full_like(rewards, 1e6))
    values = torch.where(used_v, values, torch.full_like(values, -1e6))
    return rewards, values, terminated, valid_next, mask


def test_gae_returns_equal_td_lambda_targets_on_random_padded_batches():
    gen = torch.Generator().manual_seed(1)
    for lam in (0.0, 0.3, 0.95, 1.0):
        for _ in range(3):
            rewards, values, terminated, valid_next, mask = _random_batch(gen)
            adv, ret = gae(rewards, values, terminated, valid_next, 0.97, lam)
            targets = td_lambda_targets(rewards, terminated, valid_next, values[:, 1:], 0.97, lam)
            valid = mask > 0
            assert torch.allclose(ret[valid], targets[valid], atol=1e-5)
            assert torch.allclose(ret, adv + values[:, :-1])  # returns = A + V(s_t)
            assert torch.isfinite(adv).all() and (adv[~valid] == 0).all()
