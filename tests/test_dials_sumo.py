"""dials_traffic with traffic_model=sumo (concord.envs.dials_traffic_sumo): the surrogate's observation layout from
SUMO's vehicle positions, lights and yellow timing, arrival rate, seeding, rewards, worker processes for
batch_size_run > 1, the GS-only local form, the missing-extra error, and a run through main.py."""
from __future__ import annotations

import importlib.util
import math
import os
import sys

import numpy as np
import pytest

from concord.envs.dials_traffic import DialsTrafficEnv
from concord.errors import ConfigError

HAVE_SUMO = importlib.util.find_spec("libsumo") is not None and importlib.util.find_spec("sumo") is not None
needs_sumo = pytest.mark.skipif(not HAVE_SUMO, reason="SUMO is not installed: pip install 'concord-marl[sumo]'")
KEEP = np.zeros((1, 4), np.int64)


def _sumo(**kw):
    return DialsTrafficEnv(traffic_model="sumo", **{"num_envs": 1, "seed": 0, "n_agents": 4, **kw})


def _vehicles_on_incoming_lanes(env):
    """(agent, lane k, distance to the stop line, speed) of every vehicle on an incoming lane, read from libsumo."""
    import libsumo

    out = []
    for i, lanes in enumerate(env.layout.lanes):
        for k, lane in enumerate(lanes):
            for v in libsumo.lane.getLastStepVehicleIDs(lane):
                out.append((i, k, libsumo.lane.getLength(lane) - libsumo.vehicle.getLanePosition(v),
                            libsumo.vehicle.getSpeed(v)))
    return out


@needs_sumo
def test_agents_and_lanes_follow_the_grid_geometry():
    """Agent i = row * 3 + col (row 0 south, col 0 west); its lanes [W, S, E, N] run east, north, west, south and
    end at junction i, whose light the agent drives."""
    import libsumo

    env = _sumo(n_agents=9)
    try:
        assert env.in_process
        env.reset([0])
        pos = np.array([libsumo.junction.getPosition(t) for t in env.layout.tls])  # (9, 2)
        step = pos[1, 0] - pos[0, 0]
        assert step > 0
        for i in range(9):
            np.testing.assert_allclose(pos[i] - pos[0], [step * (i % 3), step * (i // 3)])  # east by col, north by row
        heading = [(1, 0), (0, 1), (-1, 0), (0, -1)]
        for i, lanes in enumerate(env.layout.lanes):
            for k, lane in enumerate(lanes):
                (x0, y0), (x1, y1) = libsumo.lane.getShape(lane)[0], libsumo.lane.getShape(lane)[-1]
                d = np.sign([round(x1 - x0), round(y1 - y0)])
                assert tuple(d) == heading[k] and libsumo.lane.getLength(lane) == pytest.approx(100.0)
                assert libsumo.edge.getToJunction(libsumo.lane.getEdgeID(lane)) == env.layout.tls[i]
    finally:
        env.close()


@needs_sumo
def test_observation_layout_and_reward_follow_sumo_vehicles():
    """Shapes and reset observation equal the surrogate's; each lane bit is a vehicle front in that 10 m cell;
    the reward is the mean speed / 10 of the vehicles on the 4 incoming lanes, in [0, 1]."""
    env, ca = _sumo(inflow_prob=0.3), DialsTrafficEnv(num_envs=1, seed=0, n_agents=4, inflow_prob=0.3)
    try:
        assert env.in_process  # its SUMO is this process's libsumo, read below
        assert env.get_env_info() == ca.get_env_info()
        first = env.reset([0])
        np.testing.assert_array_equal(first.obs, ca.reset([0]).obs)  # empty lanes, NS green
        rng = np.random.default_rng(0)
        seen, rewards = 0, []
        for _ in range(120):
            res = env.step([0], (rng.random((1, 4)) < 0.1).astype(np.int64))
            want = np.zeros((4, 36))
            speeds = [[] for _ in range(4)]
            for i, k, dist, speed in _vehicles_on_incoming_lanes(env):
                cell = math.floor(dist / 10)
                if cell < 9:
                    want[i, 9 * k + cell] = 1
                speeds[i].append(speed)
            np.testing.assert_array_equal(res.obs.obs[0, :, :36], want)
            r = [np.mean(s) / 10 if s else 0.0 for s in speeds]
            np.testing.assert_allclose(res.obs.extras["agent_reward"][0], r, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(res.reward[0], np.mean(r), rtol=1e-5)
            seen += int(want.sum())
            rewards.append(res.obs.extras["agent_reward"][0])
        rewards = np.array(rewards)
        assert seen > 100 and rewards.min() >= 0 and rewards.max() <= 1 and rewards.mean() > 0.2
        assert res.obs.obs.shape == (1, 4, 40) and res.obs.extras["influence"].shape == (1, 4, 8)
    finally:
        env.close()


@needs_sumo
def test_lights_obey_actions_and_yellow_lasts_three_steps():
    """The one-hot and SUMO's own signal state of junction 0 (links of its W/E approaches vs S/N ones)."""
    import libsumo

    env = _sumo(inflow_prob=0.0)
    try:
        assert env.in_process
        env.reset([0])
        tls = env.layout.tls[0]
        ew_links = [n for n, links in enumerate(libsumo.trafficlight.getControlledLinks(tls))
                    if links[0][0] in (env.layout.lanes[0][0], env.layout.lanes[0][2])]

        def light(obs):
            state = libsumo.trafficlight.getRedYellowGreenState(tls)
            ew = {state[n] for n in ew_links}
            ns = {c for n, c in enumerate(state) if n not in ew_links}
            return obs.obs[0, 0, 36:].tolist(), ew.pop() + ns.pop()

        res = env.step([0], KEEP)
        assert light(res.obs) == ([0, 0, 0, 1], "rG")  # NS green
        res = env.step([0], np.array([[1, 0, 0, 0]]))
        for _ in range(2):
            assert light(res.obs) == ([0, 0, 1, 0], "ry")  # NS yellow
            res = env.step([0], np.array([[1, 0, 0, 0]]))  # ignored while yellow
        assert light(res.obs) == ([0, 0, 1, 0], "ry")
        res = env.step([0], np.array([[1, 0, 0, 0]]))  # ignored on the step the new green starts
        assert light(res.obs) == ([1, 0, 0, 0], "Gr")  # EW green
        res = env.step([0], np.array([[1, 0, 0, 0]]))
        assert light(res.obs) == ([0, 1, 0, 0], "yr")  # EW yellow
        assert res.obs.obs[0, 1:, 36:].tolist() == [[0, 0, 0, 1]] * 3  # the other lights kept NS green
        assert set(libsumo.trafficlight.getRedYellowGreenState(env.layout.tls[3])) == {"G", "r"}
    finally:
        env.close()


@needs_sumo
def test_arrivals_follow_inflow_prob_and_entries_are_influence():
    """Over 300 steps SUMO gets ~inflow_prob vehicles per entry road per step; every departure shows as an entry
    influence on an entry lane, and nothing enters an entry lane otherwise."""
    import libsumo

    env = _sumo(inflow_prob=0.15, episode_limit=300)
    try:
        assert env.in_process
        env.reset([0])
        entry = np.zeros((4, 4), bool)
        for i, k, _ in env.layout.entry_routes:
            entry[i, k] = True
        departed = entered_entry = 0
        rng = np.random.default_rng(1)
        for _ in range(300):
            res = env.step([0], (rng.random((1, 4)) < 0.2).astype(np.int64))
            departed += libsumo.simulation.getDepartedNumber()
            u = res.obs.extras["influence"][0, :, :4]  # (N, 4) entries
            entered_entry += int(u[entry].sum())
        loaded = departed + len(libsumo.simulation.getPendingVehicles())  # SUMO's count: inserted or waiting
        expected = 0.15 * 8 * 300  # 360, sd ~ 18
        assert abs(loaded - expected) < 0.15 * expected, loaded
        assert departed == entered_entry and departed > 0.6 * loaded
    finally:
        env.close()


@needs_sumo
def test_same_seed_same_trajectory_and_batches_run_in_worker_processes():
    """Same seed -> identical trajectories; another seed -> another; a batch of 2 (one SUMO worker process per env,
    since libsumo is one simulation per process) equals the 2 envs built alone with their own seeds."""
    from concord.envs.seeding import env_seeds

    def run(env, n, steps=60):
        rngs = [np.random.default_rng(5) for _ in range(n)]  # the same actions in every env
        out = [env.reset(range(n)).obs]
        for _ in range(steps):
            res = env.step(list(range(n)), np.stack([r.integers(0, 2, 4) for r in rngs]))
            out += [res.obs.obs, res.obs.extras["influence"], res.reward]
        return out

    def trajectory(seed):
        env = _sumo(seed=seed, inflow_prob=0.2)
        try:
            return run(env, 1)
        finally:
            env.close()

    a, b, c = trajectory([11]), trajectory([11]), trajectory([12])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    batch = _sumo(num_envs=2, seed=9, inflow_prob=0.2)
    try:
        assert not batch.in_process and len(batch.sims) == 2
        both = run(batch, 2)
    finally:
        batch.close()
    for j, s in enumerate(env_seeds(9, 2)):
        for x, y in zip(both, trajectory([s])):
            np.testing.assert_array_equal(x[j], y[0])


@needs_sumo
def test_the_sumo_model_is_a_gs_only_and_cleans_up():
    env = _sumo()
    workdir = env.workdir
    local = DialsTrafficEnv.local_model(traffic_model="sumo")
    x = local.reset(np.zeros((1, 0)))
    with pytest.raises(ConfigError, match="global simulator only.*dials_mode=gs"):
        local.step(x, np.zeros(1, np.int64), np.zeros((1, 8), np.int64), np.zeros((1, 0)))
    env.close()
    assert not os.path.exists(workdir)
    env = _sumo(spillback_influence=False)
    try:
        assert env.reset([0]).extras["influence"].shape == (1, 4, 4)  # arrivals only
        assert env.step([0], KEEP).obs.extras["influence"].shape == (1, 4, 4)
    finally:
        env.close()
    with pytest.raises(ConfigError, match="traffic_model must be one of surrogate, sumo"):
        DialsTrafficEnv(traffic_model="cars")


def test_missing_libsumo_is_a_one_line_config_error(monkeypatch, run_main):
    monkeypatch.setitem(sys.modules, "libsumo", None)  # import libsumo -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'concord-marl\[sumo\]'"):
        _sumo()
    DialsTrafficEnv.check_available({"traffic_model": "surrogate"})
    code, result, err = run_main("ippo", "dials_traffic", "env_args.traffic_model=sumo", "t_max=10")
    assert code == 2 and result is None
    assert "error: dials_traffic traffic_model=sumo needs SUMO: pip install 'concord-marl[sumo]'" in err
    assert "Traceback" not in err


SMALL = ["env_args.traffic_model=sumo", "env_args.episode_limit=20", "dials_backend=inline", "t_max=40",
         "test_interval=40", "log_interval=40", "use_tensorboard=False", "save_model=False", "seed=3",
         "hidden_dim=16", "critic_hidden_dim=16"]


@needs_sumo
def test_runs_through_main_on_sumo(run_main):
    """A dials gs-baseline run on SUMO (2 envs per round: 2 SUMO worker processes) ends with the final JSON line,
    its results labelled not-surrogate."""
    code, result, err = run_main("dials", "dials_traffic", *SMALL, "dials_mode=gs", "batch_size_run=2",
                                 "test_nepisode=2")
    assert code == 0, err
    assert result["t_env"] >= 40 and result["test_surrogate_traffic_model_mean"] == 0.0


@needs_sumo
@pytest.mark.parametrize("mode", ["untrained_dials", "dials"])
def test_dials_training_in_local_simulators_is_refused_on_sumo(run_main, mode):
    """Refused by the runner before any worker starts or any GS data is collected (the default backend)."""
    args = [a for a in SMALL if not a.startswith("dials_backend=")]
    code, result, err = run_main("dials", "dials_traffic", *args, f"dials_mode={mode}", "test_nepisode=1")
    assert code == 2 and result is None and "has no local simulator" in err and "Traceback" not in err
    assert "DIALS worker" not in err
