"""Partially observable simple spread (LAN App. G): mpe2 parity, visibility, scaling, seeding, batching."""
from __future__ import annotations

import numpy as np
import pytest

from concord.envs.po_spread import COLLISION_DIST, POSpreadVecEnv
from concord.envs.seeding import env_seeds
from concord.errors import ConfigError
from concord.registry import ENVS


def _run(env: POSpreadVecEnv, ids: list[int], actions: np.ndarray) -> list[np.ndarray]:
    """Step ``ids`` with each row of ``actions (T, k, N)``; collect obs, state, reward and positions."""
    out = []
    for a in actions:
        res = env.step(ids, a)
        out += [res.obs.obs, res.obs.state, res.reward, res.obs.extras["positions"]]
    return out


@pytest.mark.parametrize("overlap", [False, True])
def test_matches_mpe2_simple_spread(overlap: bool) -> None:
    """Positions, velocities, observations and team reward equal mpe2 1.1.1's over a whole episode."""
    simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")
    n = 3
    # Σ_i r_i = N(1−ρ)·global + ρ·Σ_i local_i; ρ = N/(N+1) makes both weights N/(N+1).
    ref = simple_spread_v3.parallel_env(N=n, local_ratio=n / (n + 1), max_cycles=25, continuous_actions=False)
    ref.reset(seed=11)
    world = ref.unwrapped.world
    if overlap:  # agents 0 and 1 start in contact, so the contact force and the penalty act at once
        world.agents[1].state.p_pos = world.agents[0].state.p_pos + np.array([0.2, 0.05])
    env = POSpreadVecEnv(num_envs=1, seed=0, n_agents=n, obs_radius=np.inf)
    env.reset([0])
    env.agent_pos[0] = [a.state.p_pos for a in world.agents]
    env.agent_vel[0] = [a.state.p_vel for a in world.agents]
    env.landmark_pos[0] = [lm.state.p_pos for lm in world.landmarks]
    rng = np.random.default_rng(5)
    pairs = 0  # colliding agent pairs summed over the episode, from the positions
    for t in range(25):
        act = rng.integers(0, 5, n)
        ref_obs, ref_rew, ref_term, ref_trunc, _ = ref.step({f"agent_{i}": int(act[i]) for i in range(n)})
        res = env.step([0], act[None])
        np.testing.assert_allclose(env.agent_pos[0], [a.state.p_pos for a in world.agents], rtol=0, atol=1e-9)
        np.testing.assert_allclose(env.agent_vel[0], [a.state.p_vel for a in world.agents], rtol=0, atol=1e-9)
        team = sum(ref_rew.values()) * (n + 1) / n
        assert float(res.reward[0]) == pytest.approx(team, rel=1e-6, abs=1e-6)
        mpe_obs = np.stack([ref_obs[f"agent_{i}"] for i in range(n)])[:, : -2 * (n - 1)]  # drop comm zeros
        np.testing.assert_allclose(res.obs.obs[0, :, : mpe_obs.shape[1]], mpe_obs, rtol=0, atol=1e-6)
        assert (res.obs.obs[0, :, mpe_obs.shape[1]:] == 1).all()  # every entity visible at radius ∞
        assert not res.terminated[0] and not any(ref_term.values())
        assert bool(res.truncated[0]) == all(ref_trunc.values()) == (t == 24)
        pair_d = np.linalg.norm(env.agent_pos[0][:, None] - env.agent_pos[0][None], axis=-1)  # (N, N)
        pairs += int(np.triu(pair_d < COLLISION_DIST, k=1).sum())
    if overlap:
        assert pairs > 0  # the contact force and the penalty acted, and still matched
    assert res.infos[0]["collisions"] == pairs


def test_same_seed_spawns_like_mpe2() -> None:
    """At N = 3 (scale 1) env i spawns exactly as mpe2's reset(seed=env_seeds(seed, num_envs)[i])."""
    simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")
    ref = simple_spread_v3.parallel_env(N=3, continuous_actions=False)
    env = POSpreadVecEnv(num_envs=2, seed=40)
    env.reset([0, 1])
    for i, seed in enumerate(env_seeds(40, 2)):
        ref.reset(seed=seed)
        world = ref.unwrapped.world
        np.testing.assert_array_equal(env.agent_pos[i], [a.state.p_pos for a in world.agents])
        np.testing.assert_array_equal(env.landmark_pos[i], [lm.state.p_pos for lm in world.landmarks])


def test_visibility_masking_and_reward_by_hand() -> None:
    """Entities beyond the radius are zeroed and flagged 0; the reward is −Σ nearest − penalty·touching."""
    env = POSpreadVecEnv(num_envs=1, seed=0, n_agents=3, obs_radius=1.0, collision_penalty=2.0)
    env.reset([0])
    env.agent_pos[0] = [[0.0, 0.0], [0.2, 0.0], [5.0, 5.0]]  # agents 0 and 1 touch; agent 2 far away
    env.agent_vel[0] = 0.0
    env.landmark_pos[0] = [[0.0, 0.9], [0.0, -1.5], [5.5, 5.0]]
    res = env.step([0], np.zeros((1, 3), dtype=int))
    # mpe2 moves by the old velocity first: nobody moved, but the contact pushed 0 and 1 apart along x
    np.testing.assert_array_equal(env.agent_pos[0], [[0.0, 0.0], [0.2, 0.0], [5.0, 5.0]])
    np.testing.assert_allclose(res.obs.extras["positions"][0], env.agent_pos[0], rtol=1e-7)
    vel = env.agent_vel[0]
    assert vel[0, 0] < 0 < vel[1, 0] and vel[0, 1] == vel[1, 1] == 0 and (vel[2] == 0).all()
    obs = res.obs.obs[0]
    # layout: vel 0:2, pos 2:4, landmarks 4:10, others 10:14, landmark flags 14:17, other flags 17:19
    assert obs.shape == (3, 19)
    np.testing.assert_allclose(obs[0, 0:2], vel[0], rtol=1e-6)
    np.testing.assert_array_equal(obs[0, 14:17], [1, 0, 0])  # only landmark 0 within 1.0 of agent 0
    np.testing.assert_allclose(obs[0, 4:6], [0.0, 0.9], atol=1e-6)
    np.testing.assert_array_equal(obs[0, 6:10], 0)
    np.testing.assert_array_equal(obs[0, 17:19], [1, 0])  # sees agent 1, not agent 2
    np.testing.assert_allclose(obs[0, 10:12], [0.2, 0.0], atol=1e-6)
    np.testing.assert_array_equal(obs[0, 12:14], 0)
    np.testing.assert_array_equal(obs[2, 14:19], [0, 0, 1, 0, 0])  # agent 2 sees landmark 2 only
    np.testing.assert_allclose(obs[2, 8:10], [0.5, 0.0], atol=1e-6)
    # nearest agents at 0.9, 1.5 and 0.5; agents 0 and 1 each touch one other agent (penalty 2 each)
    assert float(res.reward[0]) == pytest.approx(-(0.9 + 1.5 + 0.5) - 2.0 * 2, abs=1e-6)
    # the radius is inclusive: landmark 0 at exactly 1.0 is seen, landmark 1 at 1.01 is not;
    # agents 0.305 apart do not touch (no penalty)
    env.agent_pos[0] = [[0.0, -0.1], [0.305, -0.1], [-3.0, 0.0]]
    env.agent_vel[0] = 0.0
    env.landmark_pos[0] = [[0.0, 0.9], [0.0, 0.91], [0.0, -3.0]]
    res = env.step([0], np.zeros((1, 3), dtype=int))
    np.testing.assert_array_equal(res.obs.obs[0, 0, 14:17], [1, 0, 0])
    assert float(res.reward[0]) == pytest.approx(-(1.0 + 1.01 + 2.9), abs=1e-6)


@pytest.mark.parametrize(("n", "scaling", "half_side"), [
    (6, "area", np.sqrt(2)), (9, "area", np.sqrt(3)), (6, "side", 2.0), (9, "side", 3.0), (9, "none", 1.0),
])
def test_world_scale(n: int, scaling: str, half_side: float) -> None:
    """Spawns fill U(−s, s)² with s = √(N/3) ("area"), N/3 ("side") or 1 ("none"); obs/state sizes follow N."""
    env = POSpreadVecEnv(num_envs=64, seed=3, n_agents=n, world_scaling=scaling)
    first = env.reset(range(64))
    assert env.scale == pytest.approx(half_side)
    for arr in (env.agent_pos, env.landmark_pos):
        assert np.abs(arr).max() <= half_side
        assert np.abs(arr).max() > 0.97 * half_side
    info = env.get_env_info()
    assert first.obs.shape == (64, n, info["obs_shape"]) and info["obs_shape"] == 4 + 3 * n + 3 * (n - 1)
    assert first.state.shape == (64, 6 * n) and info["extras"] == {"positions": (n, 2)}


def _random_episode(env: POSpreadVecEnv, ids: list[int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    first = env.reset(ids)
    return [first.obs, first.state] + _run(env, ids, rng.integers(0, 5, (25, len(ids), env.n_agents)))


def test_seed_determinism() -> None:
    """Same seed, same actions -> identical trajectories; another seed -> different spawns."""
    a = _random_episode(POSpreadVecEnv(num_envs=2, seed=9, n_agents=6), [0, 1], 1)
    b = _random_episode(POSpreadVecEnv(num_envs=2, seed=9, n_agents=6), [0, 1], 1)
    c = _random_episode(POSpreadVecEnv(num_envs=2, seed=10, n_agents=6), [0, 1], 1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_batched_equals_single_and_subsets_leave_others_alone() -> None:
    """Env i of a batch seeded s behaves as a lone env seeded [env_seeds(s, 3)[i]]; a subset step touches only it."""
    batch = POSpreadVecEnv(num_envs=3, seed=20, n_agents=9, obs_radius=1.5)
    together = _random_episode(batch, [0, 1, 2], 2)
    acts = np.random.default_rng(2).integers(0, 5, (25, 3, 9))  # the actions _random_episode drew
    for i, seed in enumerate(env_seeds(20, 3)):
        single = POSpreadVecEnv(num_envs=1, seed=[seed], n_agents=9, obs_radius=1.5)
        start = single.reset([0])
        alone = [start.obs, start.state] + _run(single, [0], acts[:, i : i + 1])
        for x, y in zip(together, alone):
            np.testing.assert_array_equal(x[i : i + 1], y)
    # a subset step leaves env 1 untouched
    before = (batch.agent_pos[1].copy(), batch.agent_vel[1].copy(), batch.t[1])
    batch.step([2, 0], np.full((2, 9), 2))
    assert np.array_equal(batch.agent_pos[1], before[0]) and np.array_equal(batch.agent_vel[1], before[1])
    assert batch.t[1] == before[2] and batch.t[0] == batch.t[2] == 26


def test_rng_state_round_trip() -> None:
    """Restoring the rng state replays the same spawns, even after other resets in between."""
    env = POSpreadVecEnv(num_envs=2, seed=4, n_agents=3)
    env.reset([0, 1])
    for _ in range(3):
        env.step([0, 1], np.full((2, 3), 4))
    saved = env.get_rng_state()
    first = env.reset([0, 1]).obs.copy()
    assert (first[:, :, :2] == 0).all() and (env.t == 0).all()  # a new episode starts at rest
    env.reset([1])
    env.set_rng_state(saved)
    np.testing.assert_array_equal(env.reset([0, 1]).obs, first)
    with pytest.raises(ConfigError):
        env.set_rng_state(saved[:1])


def test_truncation_metrics_and_bad_input() -> None:
    """``episode_limit`` steps end by truncation with the episode metrics; bad input raises ConfigError."""
    assert ENVS.get("po_spread") is POSpreadVecEnv
    env = POSpreadVecEnv(num_envs=1, seed=0, episode_limit=3)
    env.reset([0])
    results = [env.step([0], np.zeros((1, 3), dtype=int)) for _ in range(3)]
    assert [bool(r.truncated[0]) for r in results] == [False, False, True]
    assert not any(r.terminated[0] for r in results) and results[0].infos == [{}]
    assert set(results[-1].infos[0]) == {"landmark_dist", "occupied_landmarks", "collisions"}
    assert results[-1].infos[0]["collisions"] == 0  # this spawn has no contact, so reward = −landmark_dist
    assert results[-1].infos[0]["landmark_dist"] == pytest.approx(-float(results[-1].reward[0]), rel=1e-6)
    with pytest.raises(ConfigError):
        env.step([0], np.full((1, 3), 5))
    with pytest.raises(ConfigError):
        env.step([0], np.zeros((1, 2), dtype=int))
    with pytest.raises(ConfigError):
        POSpreadVecEnv(num_envs=1, world_scaling="volume")
    with pytest.raises(ConfigError):
        POSpreadVecEnv(num_envs=1, obs_radius=0.0)


def test_yaml_declares_every_constructor_argument_with_its_default() -> None:
    """config/envs/po_spread.yaml lists exactly the constructor keywords, with the same defaults."""
    import inspect
    import os

    import yaml

    path = os.path.join(os.path.dirname(__file__), "..", "config", "envs", "po_spread.yaml")
    with open(path) as f:
        cfg = yaml.safe_load(f)
    params = inspect.signature(POSpreadVecEnv.__init__).parameters
    defaults = {k: p.default for k, p in params.items() if k not in ("self", "num_envs", "seed")}
    assert cfg["env"] == "po_spread" and cfg["env_args"] == defaults
