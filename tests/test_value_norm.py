"""ValueNorm's exact and EMA statistics, and PopArt's output-preserving updates."""
from __future__ import annotations

import numpy as np
import torch

from concord.components.value_norm import PopArt, ValueNorm


def test_exact_mode_matches_numpy_over_all_data_seen():
    rng = np.random.default_rng(0)
    norm, seen = ValueNorm(shape=3), []
    for n, loc, scale in ((5, 0.0, 1.0), (17, 10.0, 3.0), (1, -4.0, 1.0), (40, 2.0, 0.5)):
        x = rng.normal(loc, scale, size=(n, 3))  # (n, K)
        norm.update(torch.from_numpy(x).float().reshape(n, 1, 3))  # leading dims are flattened
        seen.append(np.asarray(torch.from_numpy(x).float(), dtype=np.float64))
        mean, var = norm.mean_var()
        all_x = np.concatenate(seen)
        assert np.allclose(mean.numpy(), all_x.mean(0), rtol=1e-10, atol=1e-12)
        assert np.allclose(var.numpy(), all_x.var(0), rtol=1e-10, atol=1e-12)


def test_shared_exact_mode_pools_every_entry():
    norm = ValueNorm()
    norm.update(torch.tensor([[1.0, 3.0], [5.0, 7.0]]))  # (B, K) pooled: mean 4, var 5
    norm.update(torch.tensor([9.0]))  # all 5 entries: mean 5, var 8
    mean, var = norm.mean_var()
    assert torch.allclose(mean, torch.tensor([5.0], dtype=torch.float64))
    assert torch.allclose(var, torch.tensor([8.0], dtype=torch.float64))
    assert torch.allclose(norm.normalize(torch.tensor([[9.0, 1.0]])), torch.tensor([[2 ** 0.5, -(2 ** 0.5)]]))


def test_normalize_then_denormalize_is_the_identity():
    x = torch.randn(4, 5, 2) * 30 + 7  # (B, T, K)
    for norm in (ValueNorm(2), ValueNorm(2, beta=0.9), ValueNorm(2, beta=0.9, per_element_update=True)):
        assert torch.equal(norm.normalize(x), x)  # no data yet: mean 0, std 1
        norm.update(x)
        assert not torch.allclose(norm.normalize(x), x)
        assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-4)
        assert torch.allclose(norm.normalize(norm.denormalize(x)), x, atol=1e-4)


def test_ema_debiasing():
    beta = 0.99
    norm = ValueNorm(beta=beta)
    norm.update(torch.tensor([1.0, 3.0]))
    mean, var = norm.mean_var()  # the first update gives the batch statistics despite the zero start
    assert abs(mean.item() - 2.0) < 1e-12 and abs(var.item() - 1.0) < 1e-10
    norm.update(torch.tensor([10.0]))
    # debiased: (β(1 − β)·2 + (1 − β)·10) / (1 − β²) = (2β + 10) / (1 + β); mean square (5β + 100) / (1 + β)
    mean, var = norm.mean_var()
    m = (2 * beta + 10) / (1 + beta)
    assert abs(mean.item() - m) < 1e-10
    assert abs(var.item() - ((5 * beta + 100) / (1 + beta) - m**2)) < 1e-9


def test_per_element_update_decays_by_beta_per_row():
    norm = ValueNorm(beta=0.5, per_element_update=True)
    norm.update(torch.tensor([4.0]))
    norm.update(torch.tensor([0.0, 0.0]))  # weight 0.25 on the old: (0.25·0.5·4) / (1 − 0.125)
    assert abs(norm.mean_var()[0].item() - 0.5 / 0.875) < 1e-12


def test_variance_floor():
    norm = ValueNorm()
    norm.update(torch.full((10,), 3.0))  # var 0: std floored at sqrt(1e-2)
    assert torch.allclose(norm.normalize(torch.tensor([3.5])), torch.tensor([5.0]))


def test_state_dict_round_trip():
    x = torch.randn(50, 3) * 4 + 1  # (N, K)
    probe = torch.randn(8, 3)  # (N, K)
    for kwargs in ({}, {"beta": 0.999}):
        norm = ValueNorm(3, **kwargs)
        norm.update(x)
        norm.update(x[:7] * 2)
        copy = ValueNorm(3, **kwargs)
        copy.load_state_dict(norm.state_dict())
        assert torch.equal(copy.normalize(probe), norm.normalize(probe))
        assert torch.equal(copy.denormalize(probe), norm.denormalize(probe))
        norm.update(x * 10)  # the copy holds its own tensors
        assert not torch.equal(copy.normalize(probe), norm.normalize(probe))


def test_popart_update_preserves_denormalised_outputs():
    torch.manual_seed(0)
    layer = PopArt(6, out_features=2, beta=3e-4)
    weight = layer.weight
    x = torch.randn(32, 6)  # (N, in)
    for targets in (torch.randn(64, 2) * 10 + 100, torch.randn(64, 2) * 0.1 - 5, torch.randn(10, 2) * 1e3):
        before = layer.denormalize(layer(x))  # (N, out)
        stats = [t.clone() for t in layer.mean_std()]
        layer.update(targets)
        after = layer.denormalize(layer(x))
        assert torch.allclose(after, before, rtol=1e-5, atol=1e-5)
        mean, std = layer.mean_std()
        assert not torch.allclose(mean, stats[0]) and not torch.allclose(std, stats[1])
    assert layer.weight is weight  # rescaled in place, so optimisers keep their parameters


def test_popart_first_update_is_debiased_and_state_dict_round_trips():
    layer = PopArt(3, beta=3e-4)
    layer.update(torch.tensor([[1.0], [3.0]]))
    mean, std = layer.mean_std()
    assert abs(mean.item() - 2.0) < 1e-9 and abs(std.item() - 1.0) < 1e-6
    assert torch.allclose(layer.normalize(torch.tensor([[5.0]])), torch.tensor([[3.0]]))
    copy = PopArt(3, beta=3e-4)
    copy.load_state_dict(layer.state_dict())
    x = torch.randn(4, 3)
    assert torch.equal(copy.denormalize(copy(x)), layer.denormalize(layer(x)))


def test_popart_normalised_targets_are_standardised_for_a_fixed_distribution():
    gen = torch.Generator().manual_seed(2)
    layer = PopArt(4, out_features=2, beta=3e-4)
    loc, scale = torch.tensor([50.0, -3.0]), torch.tensor([5.0, 0.2])
    for _ in range(300):
        layer.update(torch.randn(64, 2, generator=gen) * scale + loc)
    z = layer.normalize(torch.randn(20000, 2, generator=gen) * scale + loc)  # (N, out)
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=0.05)
    assert torch.allclose(z.std(0), torch.ones(2), atol=0.05)
