"""QTRAN-base (concord.modules.mixers.qtran): constraint losses by hand, detached Q̂_jt, sizes, learning the
non-monotonic matrix game, SMAX smoke run."""
from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from concord.config import load_config
from concord.errors import ConfigError
from concord.modules.mixers.base import MixerContext
from concord.registry import MIXERS
from tests.conftest import ROOT
from tests.test_cli import UNIFORM

ARGS = dict(qtran_inputs="hidden", mixing_embed_dim=64, qtran_values_embed=128, qtran_lambda_opt=1.0,
            qtran_lambda_nopt=0.1, hidden_dim=64)
# Two agents, two actions: Q_1 = [1, 2], Q_2 = [0.5, -1] -> greedy ū = (1, 0), Σ max Q_i = 2.5; chosen u = (0, 1),
# Σ Q_i(u) = 0. Batch of 2 episodes x 2 steps; step 1 is padding (mask 0, no action available, greedy -inf).
ALL_QS = torch.tensor([[1.0, 2.0], [0.5, -1.0]]).expand(2, 2, 2, 2).clone()  # (B, T, n, A)
CHOSEN = torch.tensor([0, 1]).expand(2, 2, 2).clone()  # (B, T, n)
MASK = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # (B, T)
AVAIL = MASK.bool()[..., None, None].expand(2, 2, 2, 2).clone()  # (B, T, n, A)


def _mixer(**over):
    return MIXERS.get("qtran")({"n_agents": 2, "n_actions": 2, "state_shape": 1}, SimpleNamespace(**{**ARGS, **over}))


def _ctx(all_qs: torch.Tensor, hidden: torch.Tensor | None = None) -> MixerContext:
    greedy = all_qs.masked_fill(~AVAIL, -float("inf")).max(-1).values  # (B, T, n)
    return MixerContext(all_qs=all_qs, actions=CHOSEN, avail_actions=AVAIL, greedy_qs=greedy, hidden=hidden, mask=MASK)


def _linear(weights: list[float], bias: float) -> nn.Linear:
    layer = nn.Linear(len(weights), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
        layer.bias.fill_(bias)
    return layer


def test_hidden_mode_constraint_losses_match_a_hand_computation():
    """Encoder = identity, so Q_jt = 3·#(u_i = 0) + 1·#(u_i = 1) and V_jt(s) = 10 s − 12 (s = 1, 2 per episode).
    Q̂_jt(ū) = Q_jt(u) = 4. Episode 1 (V = −2): L_opt term (2.5 − 4 − 2)² = 12.25, L_nopt term min(0 − 4 − 2, 0)² = 36;
    episode 2 (V = 8): (2.5 − 4 + 8)² = 42.25 and min(4, 0)² = 0. Means over the 2 valid steps, λ_nopt = 0.1."""
    mixer = _mixer(hidden_dim=1)
    mixer.action_encoding = nn.Identity()  # e(h_i, u_i) = [h_i, onehot(u_i)], summed: [0, #0s, #1s]
    mixer.Q = _linear([0.0, 0.0, 3.0, 1.0], 0.0)  # over [s, Σh, #0s, #1s]
    mixer.V = _linear([10.0], -12.0)
    states = torch.tensor([1.0, 2.0]).view(2, 1, 1).expand(2, 2, 1).clone()  # (B, T, 1)
    all_qs = ALL_QS.clone().requires_grad_(True)
    ctx = _ctx(all_qs, hidden=torch.zeros(2, 2, 2, 1))
    chosen = all_qs.gather(-1, CHOSEN.unsqueeze(-1)).squeeze(-1)
    q_taken = mixer(chosen, states, ctx)
    assert torch.allclose(q_taken, torch.full((2, 2, 1), 4.0))
    aux = mixer.auxiliary_losses(ctx, states=states, targets=torch.zeros(2, 2, 1), q_taken=q_taken)
    assert aux["qtran_opt"].item() == pytest.approx((12.25 + 42.25) / 2)
    assert aux["qtran_nopt"].item() == pytest.approx(0.1 * 36 / 2)
    # Q̂_jt is detached: the constraints train V_jt and the agents' values, never Q_jt
    sum(aux.values()).backward()
    assert mixer.Q.weight.grad is None and mixer.V.weight.grad.abs().sum() > 0
    assert torch.isfinite(all_qs.grad).all() and all_qs.grad[:, 0].abs().sum() > 0 and (all_qs.grad[:, 1] == 0).all()


def test_values_mode_reads_only_values_and_matches_a_hand_computation():
    """Trunk = identity: Q_jt = Q_1 + 2 Q_2 over the chosen values (detached), V_jt = s + max Q_1 − 10 over the greedy
    ones. Q_jt(u) = 1 − 2 = −1, Q̂_jt(ū) = 2 + 1 = 3, V_jt = 1 + 2 − 10 = −7 (s = 1):
    L_opt = (2.5 − 3 − 7)² = 56.25, L_nopt = min(0 + 1 − 7, 0)² = 36, both weights 1 (VAST's setting)."""
    mixer = _mixer(qtran_inputs="values", qtran_lambda_nopt=1.0)
    mixer.trunk = nn.Identity()
    mixer.q_head, mixer.v_head = _linear([0.0, 1.0, 2.0], 0.0), _linear([1.0, 1.0, 0.0], -10.0)
    states = torch.ones(2, 2, 1)
    greedy = ALL_QS.max(-1).values.masked_fill(MASK[..., None] == 0, -float("inf")).requires_grad_(True)  # (B, T, n)
    chosen = ALL_QS.gather(-1, CHOSEN.unsqueeze(-1)).squeeze(-1).requires_grad_(True)  # (B, T, n)
    # a sub-team context: no usable all_qs, actions or hidden states (zeros), only greedy values
    ctx = MixerContext(all_qs=torch.zeros(2, 2, 2, 2), actions=torch.zeros(2, 2, 2, dtype=torch.long),
                       avail_actions=AVAIL, greedy_qs=greedy, mask=MASK)
    q_taken = mixer(chosen, states, ctx)
    assert torch.allclose(q_taken[:, 0], torch.full((2, 1), -1.0))
    aux = mixer.auxiliary_losses(ctx, states=states, q_taken=q_taken, agent_qs=chosen)
    assert aux["qtran_opt"].item() == pytest.approx(56.25) and aux["qtran_nopt"].item() == pytest.approx(36.0)
    # the TD path does not reach the agents' values (the VAST authors' detach); the constraints do
    q_taken.sum().backward(retain_graph=True)
    assert chosen.grad is None
    sum(aux.values()).backward()
    assert chosen.grad[:, 0].abs().sum() > 0 and greedy.grad[:, 0].abs().sum() > 0
    assert torch.isfinite(greedy.grad).all() and (greedy.grad[:, 1] == 0).all()


def test_sizes_and_bad_mode():
    """pymarl's qtran_paper/small at 5m_vs_6m (S = 98, H = 64, A = 12, embed 64): encoder 2·(76·76 + 76) = 11,704,
    Q_jt (174·64 + 64) + (64·64 + 64) + 65 = 15,425, V_jt (98·64 + 64) + 4,160 + 65 = 10,561."""
    mixer = MIXERS.get("qtran")({"n_agents": 5, "n_actions": 12, "state_shape": 98}, SimpleNamespace(**ARGS))
    assert sum(p.numel() for p in mixer.parameters()) == 11704 + 15425 + 10561
    values = MIXERS.get("qtran")({"n_agents": 4, "n_actions": 12, "state_shape": 98},
                                 SimpleNamespace(**{**ARGS, "qtran_inputs": "values"}))
    assert sum(p.numel() for p in values.parameters()) == (102 * 128 + 128) + (128 * 128 + 128) + 2 * 129
    with pytest.raises(ConfigError, match="config key 'qtran_inputs' must be one of hidden, values"):
        load_config("qtran", "matrix_game", ["qtran_inputs=hiddn"])


def test_qtran_finds_the_optimum_of_the_non_monotonic_matrix_game(run_main):
    """Uniform exploration, 900 updates (3 per round): the greedy joint action is the optimum (payoff 8) for at least
    2 of seeds 1-3 (measured: 20/20 on seeds 1-20; 16/20 with 600 updates, 3/10 with 300), where VDN and QMIX
    settle on 0. QTRAN needs more updates than QPLEX: leaving a wrong greedy action rests on L_nopt, weighted 0.1."""
    wins = 0
    for seed in range(1, 4):
        code, result, err = run_main("qtran", "matrix_game", *UNIFORM, "updates_per_round=3", f"seed={seed}")
        assert code == 0, err
        wins += result["test_return_mean"] == 8.0
    assert "aux_qtran_opt" in err and "aux_qtran_nopt" in err
    assert wins >= 2


@pytest.mark.skipif(importlib.util.find_spec("jaxmarl") is None or not os.path.isfile(
    os.path.join(ROOT, "config", "envs", "smax.yaml")), reason="smax (jaxmarl) is not available")
def test_qtran_trains_on_smax_3m(run_main):
    code, result, err = run_main("qtran", "smax", "env_args.map_name=3m", "env_args.max_steps=30", "runner=parallel",
                                 "batch_size_run=4", "batch_size=4", "t_max=300", "test_nepisode=4", "save_model=False",
                                 "use_tensorboard=False", "seed=1")
    assert code == 0, err
    assert result["t_env"] >= 300 and "aux_qtran_nopt" in err
