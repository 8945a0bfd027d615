"""QPLEX (concord.modules.mixers.qplex): positive λ_i and w_i, Q_tot at the greedy joint action, IGM by brute
force, the detached advantage term, the attention regulariser, the authors' size, learning the matrix game."""
from __future__ import annotations

import importlib.util
import itertools
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from concord.config import load_config
from concord.errors import ConfigError
from concord.modules.mixers.base import MixerContext
from concord.registry import MIXERS
from tests.conftest import ROOT
from tests.test_cli import UNIFORM


def _args(alg: str, **over) -> SimpleNamespace:
    """The merged config of ``--config=alg`` (the qplex mixer's declared keys with the algorithm's values)."""
    return SimpleNamespace(**{**load_config(alg, "matrix_game", ["seed=1"]), **over})


# every variant: the matrix-game config (hypernet, 3-layer λ extractors), the SMAC one (qatten), and the qatten
# options the SMAC defaults leave off (weighted heads, non-linear keys, no state bias, λ instead of λ − 1)
VARIANTS = {
    "qplex": _args("qplex"),
    "qplex_sc2": _args("qplex_sc2", unit_dim=3),
    "qatten_all_options": _args("qplex_sc2", unit_dim=3, weighted_head=True, nonlinear=True, state_bias=False,
                                adv_hypernet_layers=2, is_minus_one=False),
    "hypernet_unweighted": _args("qplex", weighted_head=False),
}
N, A, S = 3, 4, 11


def _setup(name: str, b: int = 16, t: int = 5, scale: float = 1.0, seed: int = 0):
    torch.manual_seed(seed)
    mixer = MIXERS.get("qplex")({"n_agents": N, "n_actions": A, "state_shape": S}, VARIANTS[name])
    states = torch.randn(b, t, S) * scale  # (B, T, S)
    all_qs = torch.randn(b, t, N, A) * scale  # (B, T, n, A)
    avail = torch.rand(b, t, N, A) > 0.3
    avail[..., 0] = True  # at least one available action per agent
    return mixer, states, all_qs, avail


def _ctx(all_qs, actions, avail, mask=None):
    return MixerContext(all_qs=all_qs, actions=actions, avail_actions=avail, mask=mask)


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_lambda_and_w_are_positive(name, scale):
    mixer, states, all_qs, avail = _setup(name, scale=scale)
    actions = torch.randint(0, A, (16, 5, N))
    chosen = all_qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    lam = mixer.lambdas(states, F.one_hot(actions, A).float())  # (B, T, n)
    w, _ = mixer.transform(chosen, states)  # (B, T, n)
    assert lam.shape == w.shape == (16, 5, N)
    assert (lam > 0).all() and (w > 0).all()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_q_tot_at_the_greedy_joint_action_is_the_sum_of_transformed_values(name):
    """Q_tot(ū) = Σ_i (w_i V_i + v_i) with V_i = max over available actions; every other joint action scores no more
    (IGM, checked by brute force over all 4³ joint actions of every (b, t))."""
    mixer, states, all_qs, avail = _setup(name, b=4, t=3)
    masked = all_qs.masked_fill(~avail, -float("inf"))
    v_max, greedy = masked.max(-1)  # (B, T, n)
    q_greedy = mixer(v_max, states, _ctx(all_qs, greedy, avail))  # (B, T, 1)
    w, v = mixer.transform(v_max, states)
    assert torch.allclose(q_greedy.squeeze(-1), (w * v_max + v).sum(-1), atol=1e-5)
    if not VARIANTS[name].nonlinear:  # with non-linear keys w depends on the chosen values: no fixed bound
        for joint in itertools.product(range(A), repeat=N):
            actions = torch.tensor(joint).expand(4, 3, N)
            ok = avail.gather(-1, actions.unsqueeze(-1)).squeeze(-1).all(-1)  # (B, T): joint action available
            q = mixer(all_qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1), states, _ctx(all_qs, actions, avail))
            assert (q.squeeze(-1)[ok] <= q_greedy.squeeze(-1)[ok] + 1e-5).all()


def test_advantage_term_is_detached_and_lambda_learns_from_it():
    """∂Q_tot/∂Q_i(u_i) = w_i exactly (the advantage term carries no gradient to Q_i), yet λ's parameters get one."""
    mixer, states, all_qs, avail = _setup("qplex_sc2")
    actions = torch.multinomial(avail.float().view(-1, A), 1).view(16, 5, N)  # available, mostly non-greedy
    chosen = all_qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1).requires_grad_(True)
    q_tot = mixer(chosen, states, _ctx(all_qs, actions, avail))
    q_tot.sum().backward()
    w, _ = mixer.transform(chosen.detach(), states)
    assert torch.allclose(chosen.grad, w, atol=1e-6)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer.lambdas.parameters())


def test_attention_regulariser_is_a_masked_mean_of_squared_logits():
    mixer, states, all_qs, avail = _setup("qplex_sc2", b=4, t=3)
    actions = all_qs.argmax(-1)
    mask = torch.tensor([[1.0, 1.0, 0.0]]).expand(4, 3)
    aux = mixer.auxiliary_losses(_ctx(all_qs, actions, avail, mask), states=states)
    chosen = all_qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    logits = mixer.transform.logits(chosen[:, :2], states[:, :2])  # (B*2, H, n): the valid steps only
    assert aux["qplex_attend_reg"].item() == pytest.approx(0.001 * (logits**2).mean(dim=(0, 2)).sum().item(), rel=1e-5)
    assert MIXERS.get("qplex")({"n_agents": N, "n_actions": A, "state_shape": S},
                               VARIANTS["qplex"]).auxiliary_losses(_ctx(all_qs, actions, avail), states=states) == {}


def test_authors_size_on_5m_vs_6m_and_unit_dim_errors():
    """qplex_sc2 at SMAC 5m_vs_6m (state 98, 5 agents, 12 actions, unit_dim 4): Qatten 4·(98·64 + 64 + 64·32) queries
    + 4·4·32 keys + V (98·32 + 32 + 33) = 37,249, λ 4·(99 + 495 + 795) = 5,556: 42,805 as the authors' code."""
    info = {"n_agents": 5, "n_actions": 12, "state_shape": 98}
    from_env = MIXERS.get("qplex")({**info, "unit_dim": 4}, _args("qplex_sc2"))
    from_key = MIXERS.get("qplex")(info, _args("qplex_sc2", unit_dim=4))
    assert sum(p.numel() for p in from_env.parameters()) == sum(p.numel() for p in from_key.parameters()) == 42805
    with pytest.raises(ConfigError, match="qplex_weights=qatten needs unit_dim"):
        MIXERS.get("qplex")(info, _args("qplex_sc2"))
    with pytest.raises(ConfigError, match="config key 'qplex_weights' must be one of hypernet, qatten"):
        load_config("qplex", "matrix_game", ["qplex_weights=dmaq"])


def test_qplex_finds_the_optimum_of_the_non_monotonic_matrix_game(run_main):
    """Uniform exploration, 300 updates: the greedy joint action is the optimum (payoff 8) for at least 2 of seeds
    1-3 (measured: 10/10 on seeds 1-10; 20/20 on seeds 1-20 with 600 updates), where VDN and QMIX settle on 0."""
    wins = 0
    for seed in range(1, 4):
        code, result, err = run_main("qplex", "matrix_game", *UNIFORM, f"seed={seed}")
        assert code == 0, err
        wins += result["test_return_mean"] == 8.0
    assert wins >= 2


@pytest.mark.skipif(importlib.util.find_spec("jaxmarl") is None or not os.path.isfile(
    os.path.join(ROOT, "config", "envs", "smax.yaml")), reason="smax (jaxmarl) is not available")
@pytest.mark.parametrize("alg", ["qplex", "qplex_sc2"])
def test_qplex_trains_on_smax_3m(run_main, alg):
    code, result, err = run_main(alg, "smax", "env_args.map_name=3m", "env_args.max_steps=30", "runner=parallel",
                                 "batch_size_run=4", "batch_size=4", "t_max=300", "test_nepisode=4", "save_model=False",
                                 "use_tensorboard=False", "seed=1", "unit_dim=10")  # SMAX: 10 own features per unit
    assert code == 0, err
    assert result["t_env"] >= 300 and "td_loss" in err
    assert ("aux_qplex_attend_reg" in err) == (alg == "qplex_sc2")
