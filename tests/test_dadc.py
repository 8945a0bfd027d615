"""DADC (dadc.md §5): copies with the same seed stay bit-identical (in one process and one process per agent) with
every back end, the AIS loss decreases on MABC data and the AIS does not collapse, and runs through main.py train,
evaluate and resume exactly with every back end on both envs."""
from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import torch

from concord.learners.dadc import DADCLearner
from concord.tools.dadc_decentralised import run_decentralised
from concord.utils.checkpoint import find_checkpoint, load_checkpoint
from tests.conftest import build_parts
from tests.test_resume import _metrics, _series_after, assert_same

SMALL = ["env_args.episode_limit=20", "batch_size_run=3", "rollout_episodes=3"]


def _learner(alg: str, env: str, *updates: str):
    args, runner, mac = build_parts(alg, env, *updates)
    return args, runner, mac, DADCLearner(mac, runner.env_info, args, torch.device("cpu"))


def _collect(runner, learner, rounds: int):
    batches = []
    for _ in range(rounds):
        batch, _ = runner.run(learner.mac, learner.scheme, 0)
        batches.append(batch)
    return batches


BACKENDS = [("dadc", "mabc", b) for b in ("ac", "ppo", "trpo", "naf")] + \
           [("dadc_dr", "demand_response", b) for b in ("ppo", "trpo", "naf")]


@pytest.mark.parametrize("alg,env,backend", BACKENDS)
def test_copies_with_the_same_seed_and_data_stay_bit_identical(alg, env, backend):
    ups = [*SMALL, "seed=4", f"dadc_backend={backend}"]
    _, runner, _, a = _learner(alg, env, *ups)
    _, _, _, b = _learner(alg, env, *ups)
    _, _, _, other = _learner(alg, env, *ups[:-2], "seed=5", f"dadc_backend={backend}")
    assert_same(a.state_dict(), b.state_dict())
    z = torch.rand(3, a.pset.common_dim)
    for m in (a, b, other):
        m.mac.init_hidden(3)
    draws = [[m.mac.prescribe(z, np.arange(3))[0] for _ in range(20)] for m in (a, b, other)]
    assert all(torch.equal(x, y) for x, y in zip(draws[0], draws[1]))
    assert not all(torch.equal(x, y) for x, y in zip(draws[0], draws[2]))  # a different seed draws differently
    for batch in _collect(runner, other, 2):  # the same data for both copies
        sa, sb = a.update(batch, 0, 0), b.update(batch, 0, 0)
        assert sa == sb
    assert a.n_updates > 0
    assert_same(a.state_dict(), b.state_dict())


@pytest.mark.slow  # ~20 s each: two spawned interpreters import torch
@pytest.mark.parametrize("backend", ["ac", "naf"])
def test_each_agent_in_its_own_process_computes_identical_prescriptions_and_parameters(backend):
    ups = ["env_args.episode_limit=10", "batch_size_run=2", "rollout_episodes=2", "seed=9", f"dadc_backend={backend}"]
    states, thetas = run_decentralised("dadc", "mabc", ups, n_rounds=2)  # 2 updates of each copy
    a, b = (torch.load(io.BytesIO(s), weights_only=False) for s in states)
    assert a["n_updates"] == 2 if backend == "ac" else a["n_updates"] > 2  # NAF counts its gradient steps
    assert_same(a, b)
    assert np.array_equal(thetas[0], thetas[1])
    # the copies really trained: the parameters moved away from a fresh copy's
    _, _, _, fresh = _learner("dadc", "mabc", *ups)
    net = a["mac"]["net"]
    assert any(not torch.equal(net[k], v) for k, v in fresh.mac.agent.state_dict().items())


def test_ais_loss_decreases_on_mabc_data():
    _, runner, _, learner = _learner("dadc", "mabc", "env_args.episode_limit=100", "batch_size_run=3", "seed=2")
    data = [learner.common_batch(b.to_torch("cpu")) for b in _collect(runner, learner, 4)]
    held_out = data.pop()

    def ais_loss(cb):
        with torch.no_grad():
            return learner.ais(cb)[2]

    before = ais_loss(held_out)
    for _ in range(15):
        for cb in data:
            learner.train_common(cb)
    after = ais_loss(held_out)
    floor = 0.5 * learner.net.pred_dim * math.log(2 * math.pi)  # the NLL of a perfect mean prediction
    lam = learner.args.dadc_ais_lambda  # L_AIS above its floor (1 − λ)·floor falls by a third or more
    assert after["ais_loss"] - (1 - lam) * floor < 0.67 * (before["ais_loss"] - (1 - lam) * floor), (before, after)
    assert after["ais_nll"] - floor < 0.6 * (before["ais_nll"] - floor)
    assert after["ais_reward_loss"] < before["ais_reward_loss"]
    # the reward head beats the constant prediction by the held-out mean (the best constant under MSE)
    r = held_out["reward"][:, :-1][held_out["filled"][:, :-1].bool()]
    const = torch.nn.functional.smooth_l1_loss(torch.full_like(r, float(r.mean())), r).item()
    assert after["ais_reward_loss"] < const


def _trained_ais(target: str):
    """A learner trained 15 times on 3 rounds of MABC data, its held-out round, X_t (B, T-1, d) there and its mask."""
    _, runner, _, learner = _learner("dadc", "mabc", "env_args.episode_limit=100", "batch_size_run=3", "seed=2",
                                     f"dadc_ais_target={target}")
    data = [learner.common_batch(b.to_torch("cpu")) for b in _collect(runner, learner, 4)]
    held_out = data.pop()
    for _ in range(15):
        for cb in data:
            learner.train_common(cb)
    with torch.no_grad():
        x = learner.features(held_out)[:, :-1]  # (B, T-1, d)
        m = held_out["filled"][:, :-1].bool()
    return learner, held_out, x, m


def test_the_ais_does_not_collapse_and_carries_what_predicts_the_next_common_observation():
    """A constant X_t (the trivial minimiser of an NLL on X_{t+1} itself) fails these checks: every dimension of X
    varies across histories, and replacing X_t by its mean over the batch makes the prediction of Z_{t+1} worse."""
    learner, held_out, x, m = _trained_ais("z")
    var = x[m].var(0)  # (d,) across the held-out steps
    assert var.sum() > 0.05 and var.min() > 1e-3, var
    theta, z_next = held_out["theta"][:, :-1], held_out["z"][:, 1:]
    with torch.no_grad():
        mse = lambda x_: ((learner.net.predict(x_, theta)[1] - z_next) ** 2).sum(-1)[m].mean().item()
        with_x, with_mean = mse(x), mse(x[m].mean(0).expand_as(x))
    assert with_x < 0.9 * with_mean, (with_x, with_mean)
    # eq. 4's literal target, the detached X_{t+1}, shrinks X on the same data (docs/results/dadc.md, "AIS check")
    _, _, x_lit, m_lit = _trained_ais("x")
    assert x_lit[m_lit].var(0).sum() < 0.5 * var.sum()


E2E = ["t_max=120", "test_interval=60", "log_interval=60", "test_nepisode=3", "use_tensorboard=False",
       "save_model=False", *SMALL[:1], "batch_size_run=3", "rollout_episodes=3"]


@pytest.mark.parametrize("alg,env,extra", [
    *[("dadc", "mabc", [f"dadc_backend={b}"]) for b in ("ac", "ppo", "trpo", "naf")],
    ("dadc", "mabc", ["dadc_prescriptions=mabc4"]), ("dadc", "mabc", ["dadc_ais_target=x"]),
    *[("dadc_dr", "demand_response", [f"dadc_backend={b}"]) for b in ("ppo", "trpo", "naf", "ac")]])
def test_end_to_end_through_main(run_main, alg, env, extra):
    code, result, err = run_main(alg, env, *E2E, *extra)
    assert code == 0, err
    assert result["t_env"] == 120 and np.isfinite(result["test_discounted_return_mean"])
    assert "critic_loss" in err and ("ais_loss" in err) == (alg == "dadc")
    assert ("trpo_kl" in err) == ("dadc_backend=trpo" in extra)


@pytest.mark.parametrize("backend", ["ac", "ppo", "trpo", "naf"])
def test_resume_is_identical_to_an_uninterrupted_run(run_main, backend):
    n = 180  # rounds of 3 x 20 steps, updates every 2 rounds: the checkpoint at 180 holds one round in storage
    args = ["env_args.episode_limit=20", "batch_size_run=3", "rollout_episodes=6", f"dadc_backend={backend}",
            "test_interval=120", "test_nepisode=3", "log_interval=60", "use_tensorboard=False", "seed=5",
            f"t_max={2 * n}", f"save_model_interval={n}"]
    code, straight, err = run_main("dadc", "mabc", *args)
    assert code == 0, err
    first = find_checkpoint(straight["models_dir"], n)
    t_first = int(os.path.basename(first))
    assert t_first == n and load_checkpoint(first)["learner"]["storage"]["rounds"]
    code, resumed, err = run_main("dadc", "mabc", *args, f"checkpoint_path={straight['models_dir']}", f"load_step={n}")
    assert code == 0, err
    assert_same(load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"],
                load_checkpoint(find_checkpoint(resumed["models_dir"], 0))["learner"])
    ma, mb = _metrics(straight), _metrics(resumed)
    keys = ("return_mean", "test_discounted_return_mean", "critic_loss", "ais_loss",
            *(("actor_loss",) if backend != "naf" else ("q_mean",)))
    for key in keys:
        sa, sb = _series_after(ma, key, t_first), _series_after(mb, key, t_first)
        assert sa and sa == sb, key
