"""AIPs: trained on GS data from a fixed policy they recover the empirical influence distribution; retraining
fine-tunes (weights and optimiser carry over)."""
from __future__ import annotations

import numpy as np
import torch

from concord.dials.aip import AIP, AIPFitter, AIPPredictor
from concord.envs.dials_traffic import DialsTrafficEnv
from concord.envs.dials_warehouse import DialsWarehouseEnv


def gs_dataset(env, episodes: int, policy_seed: int = 0):
    """(d (B, T, N, D), u (B, T, N, M), mask (B, T)) from a fixed random policy, pairs (d_t, u_t) as DIALS trains."""
    rng = np.random.default_rng(policy_seed)
    ds, us = [], []
    for _ in range(episodes):
        obs = env.reset([0]).obs
        d, u = [], []
        for _ in range(env.episode_limit):
            d.append(env.local.dset(obs[0]))
            res = env.step([0], (rng.random((1, env.n_agents)) < 0.1).astype(np.int64)
                           if env.n_actions == 2 else rng.integers(0, 4, (1, env.n_agents)))
            u.append(res.obs.extras["influence"][0].astype(np.int64))
            obs = res.obs.obs
        ds.append(np.stack(d))
        us.append(np.stack(u))
    d, u = np.stack(ds), np.stack(us)
    return d, u, np.ones(d.shape[:2], np.float32)


def test_fnn_aip_recovers_the_empirical_influence_distribution():
    torch.manual_seed(0)
    env = DialsTrafficEnv(num_envs=1, seed=0, n_agents=4, episode_limit=200)
    d, u, mask = gs_dataset(env, 24)
    agent = 0
    aip = AIP(36, 8, 2, "fnn", [32])
    fit = AIPFitter(aip, lr=3e-3, batch_size=256, epochs=30)
    stats = fit.fit(d[:, :, agent], u[:, :, agent], mask)
    # conditionals on the most frequent d-sets match their empirical frequencies
    flat_d, flat_u = d[:, :, agent].reshape(-1, 36), u[:, :, agent].reshape(-1, 8)
    keys, inverse, counts = np.unique(flat_d, axis=0, return_inverse=True, return_counts=True)
    pred = AIPPredictor(aip, 1)
    for j in np.argsort(-counts)[:1]:  # the empty-lanes d-set
        assert counts[j] > 150
        emp = flat_u[inverse.ravel() == j].mean(0)  # (8,) P(u^m = 1 | d)
        p = pred.probs(keys[j][None], np.array([0]))[0, :, 1]
        np.testing.assert_allclose(p, emp, atol=0.08)
    # and the marginals over the data
    p_all = torch.softmax(aip(torch.as_tensor(flat_d[:, None], dtype=torch.float32))[0], -1)[:, 0, :, 1]
    np.testing.assert_allclose(p_all.mean(0).detach().numpy(), flat_u.mean(0), atol=0.03)
    assert stats["ce_test"] < stats["ce_fresh"] - 0.5  # far better than the untrained network


def test_gru_aip_fine_tunes_across_retrainings():
    torch.manual_seed(1)
    env = DialsWarehouseEnv(num_envs=1, seed=0, n_agents=4, episode_limit=50)
    d, u, mask = gs_dataset(env, 20)
    aip = AIP(37, 4, 4, "gru", [16, 16])
    fit = AIPFitter(aip, lr=1e-2, batch_size=8, epochs=10)
    first = fit.fit(d[:, :, 0], u[:, :, 0], mask)
    w = {k: v.clone() for k, v in aip.state_dict().items()}
    d2, u2, m2 = gs_dataset(env, 20, policy_seed=1)
    second = fit.fit(d2[:, :, 0], u2[:, :, 0], m2)
    assert first["ce_test"] < first["ce_fresh"]
    assert second["ce_fresh"] < first["ce_fresh"] - 0.2  # started from the trained weights, not a fresh init
    assert fit.n_fits == 2 and fit.optimiser.state_dict()["state"][0]["step"] > 20  # one Adam for both fits
    assert any(not torch.equal(w[k], v) for k, v in aip.state_dict().items())
