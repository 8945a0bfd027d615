"""Agent network, controller inputs and action selection."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from concord.components.action_selectors import EpsilonGreedySelector, MultinomialSelector
from concord.components.schedules import LinearSchedule
from concord.config import load_config, to_namespace
from concord.registry import AGENTS, MACS


@pytest.mark.parametrize("use_rnn", [True, False])
def test_rollout_step_equals_sequence_unroll(use_rnn):
    torch.manual_seed(0)
    agent = AGENTS.get("rnn")(7, 4, SimpleNamespace(hidden_dim=16, use_rnn=use_rnn))
    x = torch.randn(5, 3, 7)
    out_seq, h_seq = agent(x, agent.init_hidden(5))
    h = agent.init_hidden(5)
    for t in range(3):
        out, h = agent.step(x[:, t], h)
        assert torch.allclose(out, out_seq[:, t], atol=1e-6) and torch.allclose(h, h_seq[:, t], atol=1e-6)


def test_controller_inputs_numpy_and_torch_agree():
    args = to_namespace(load_config("qmix", "matrix_game"))
    info = {"n_agents": 3, "n_actions": 4, "obs_shape": 2, "state_shape": 1, "episode_limit": 5}
    mac = MACS.get("basic_mac")(info, args, torch.device("cpu"))
    obs = np.random.rand(2, 3, 2).astype(np.float32)
    last = np.array([[-1, 0, 3], [2, 2, -1]])
    np_in = mac.rollout_inputs(obs, last)
    t_in = mac.build_inputs(torch.from_numpy(obs), torch.from_numpy(last)).numpy()
    assert np_in.shape == (2, 3, 2 + 4 + 3) and np.array_equal(np_in, t_in)
    assert np_in[0, 0, 2:6].sum() == 0 and np_in[0, 2, 2:6].tolist() == [0, 0, 0, 1]  # no last action: zeros
    assert np_in[1, :, 6:].tolist() == np.eye(3).tolist()


def test_epsilon_greedy_respects_masks_and_anneals():
    args = SimpleNamespace(epsilon_start=1.0, epsilon_finish=0.0, epsilon_anneal_time=100, test_epsilon=0.0)
    sel = EpsilonGreedySelector(args)
    q = np.tile(np.array([5.0, 1.0, 9.0, 2.0]), (1000, 2, 1))
    avail = np.ones_like(q, dtype=bool)
    avail[:, :, 2] = False
    np.random.seed(0)
    greedy, _ = sel.select(q, avail, t_env=100)  # epsilon 0 after annealing
    assert sel.epsilon == 0.0 and (greedy == 0).all()  # best *available* action
    explore, _ = sel.select(q, avail, t_env=0)  # epsilon 1: uniform over the three available actions
    counts = np.bincount(explore.ravel(), minlength=4) / explore.size
    assert counts[2] == 0 and np.allclose(counts[[0, 1, 3]], 1 / 3, atol=0.04)
    sel.select(q, avail, t_env=50)
    assert sel.epsilon == pytest.approx(0.5)
    assert (sel.select(q, avail, t_env=0, test_mode=True)[0] == 0).all()  # test episodes use test_epsilon
    assert sel.epsilon == pytest.approx(0.5)  # a test episode does not change the logged training epsilon


def test_multinomial_samples_the_masked_softmax_of_logits_and_stores_log_probs():
    sel = MultinomialSelector(SimpleNamespace(test_greedy=True))
    probs = np.array([0.2, 0.5, 0.3])
    logits = np.tile(np.log(probs) + 7.0, (4000, 1, 1))  # softmax is shift-invariant: logits, not probabilities
    avail = np.ones_like(logits, dtype=bool)
    avail[:, :, 1] = False
    np.random.seed(1)
    a, out = sel.select(logits, avail, 0)
    freq = np.bincount(a.ravel(), minlength=3) / a.size
    assert freq[1] == 0 and np.allclose(freq, [0.4, 0.0, 0.6], atol=0.03)
    expected = np.log(np.where(a == 0, 0.4, 0.6))
    np.testing.assert_allclose(out["log_prob"], expected, rtol=1e-5)
    greedy, out = sel.select(logits, avail, 0, test_mode=True)
    assert (greedy == 2).all() and np.allclose(out["log_prob"], np.log(0.6))
    # the learner's torch policy is the same distribution
    p = sel.probs(torch.from_numpy(logits[:1]).float(), torch.from_numpy(avail[:1]), 0)
    assert torch.allclose(p, torch.tensor([[[0.4, 0.0, 0.6]]]), atol=1e-6)
    assert sel.stats()["rollout_entropy"] == pytest.approx(-(0.4 * np.log(0.4) + 0.6 * np.log(0.6)), rel=1e-6)
    assert sel.stats() == {}  # averaged since the last call; test episodes do not count


def test_linear_schedule():
    s = LinearSchedule(1.0, 0.05, 50000)
    assert s(0) == 1.0 and s(25000) == pytest.approx(0.525) and s(10**6) == pytest.approx(0.05)
