"""Mixer properties: QMIX monotonicity and size, VDN additivity, the common call signature."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from concord.modules.mixers.base import MixerContext
from concord.registry import MIXERS

ARGS = SimpleNamespace(mixing_embed_dim=32, hypernet_layers=2, hypernet_embed=64)


def _ctx(b, t, n, a):
    return MixerContext(all_qs=torch.randn(b, t, n, a), actions=torch.randint(0, a, (b, t, n)),
                        avail_actions=torch.ones(b, t, n, a, dtype=torch.bool))


def test_qmix_parameter_count_matches_pymarl_on_5m_vs_6m():
    mixer = MIXERS.get("qmix")({"n_agents": 5, "n_actions": 12, "state_shape": 98}, ARGS)
    assert sum(p.numel() for p in mixer.parameters()) == 31521


def test_qmix_is_monotonic_in_every_agent_value():
    torch.manual_seed(0)
    mixer = MIXERS.get("qmix")({"n_agents": 4, "n_actions": 5, "state_shape": 10}, ARGS)
    qs = torch.randn(8, 6, 4, requires_grad=True)
    q_tot = mixer(qs, torch.randn(8, 6, 10), _ctx(8, 6, 4, 5))
    assert q_tot.shape == (8, 6, 1)
    (grad,) = torch.autograd.grad(q_tot.sum(), qs)
    assert (grad >= 0).all() and (grad > 0).any()


def test_qmix_one_layer_hypernets_and_vdn_sum():
    mixer = MIXERS.get("qmix")({"n_agents": 3, "n_actions": 2, "state_shape": 7},
                               SimpleNamespace(mixing_embed_dim=8, hypernet_layers=1, hypernet_embed=64))
    assert sum(p.numel() for p in mixer.hyper_w_1.parameters()) == 7 * 24 + 24
    qs = torch.randn(2, 3, 3)
    vdn = MIXERS.get("vdn")({"n_agents": 3, "n_actions": 2, "state_shape": 7}, ARGS)
    assert torch.allclose(vdn(qs, torch.randn(2, 3, 7), _ctx(2, 3, 3, 2)), qs.sum(-1, keepdim=True))


@pytest.mark.parametrize("name", ["vdn", "qmix"])
def test_every_mixer_has_the_same_signature(name):
    mixer = MIXERS.get(name)({"n_agents": 2, "n_actions": 3, "state_shape": 4}, ARGS)
    out = mixer(torch.randn(5, 2, 2), torch.randn(5, 2, 4), _ctx(5, 2, 2, 3))
    assert out.shape == (5, 2, 1)
