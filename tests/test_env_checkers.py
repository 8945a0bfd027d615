"""Checkers (LAN §5.3): eating rules per agent, blocking, observations, ends, the intended play."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from concord.envs.base import step_single
from concord.envs.checkers import CheckersEnv
from concord.envs.gridworld import EAST, NOOP, NORTH, SOUTH, WEST
from concord.registry import ENVS
from tests.vecenv_checks import check_yaml_declares_constructor_defaults

CONFIG = Path(__file__).resolve().parents[1] / "config" / "envs"

STEP = 2 * 0.01  # both agents' step cost

# Found by a breadth-first search over joint moves in which agent 1 never eats a lemon, agent 2
# never eats an apple and the top row's lemons are never eaten: agent 2 clears the lemons of
# rows 1-2 and agent 1 eats all 9 apples in 23 steps (the shortest such play).
INTENDED = [(0, 3), (2, 4), (3, 1), (2, 3), (0, 3), (3, 4), (1, 0), (1, 2), (2, 3), (3, 3), (4, 1), (2, 3),
            (3, 4), (3, 2), (1, 3), (1, 3), (2, 4), (3, 1), (2, 3), (0, 3), (3, 4), (1, 0), (1, 0)]


def test_layout() -> None:
    env = CheckersEnv(seed=0)
    assert env.apples.sum() == 9 and env.lemons.sum() == 9
    assert env.lemons[0].nonzero()[0].tolist() == [1, 3, 5] and not env.apples[:, 6:].any()
    assert env.pos.tolist() == [[0, 6], [2, 6]]


def test_each_agent_eats_a_lemon_and_an_apple() -> None:
    env = CheckersEnv(seed=0)
    r, done, _ = env.step(np.array([WEST, NOOP]))  # agent 1 onto the lemon at (0, 5)
    assert r == pytest.approx(-10 - STEP) and not done and not env.lemons[0, 5]
    r, _, _ = env.step(np.array([SOUTH, NOOP]))  # agent 1 onto the apple at (1, 5)
    assert r == pytest.approx(10 - STEP) and not env.apples[1, 5]
    r, _, _ = env.step(np.array([NOOP, WEST]))  # agent 2 onto the lemon at (2, 5)
    assert r == pytest.approx(-1 - STEP)
    r, _, _ = env.step(np.array([NOOP, WEST]))  # agent 2 onto the apple at (2, 4)
    assert r == pytest.approx(1 - STEP)
    r, _, _ = env.step(np.array([NOOP, EAST]))  # back onto the now empty (2, 5)
    assert r == pytest.approx(-STEP)
    assert env.eaten.tolist() == [[1, 1], [1, 1]]


@pytest.mark.parametrize("block", [True, False])
def test_agents_block_each_other(block: bool) -> None:
    env = CheckersEnv(seed=0, agents_block=block)
    env.step(np.array([SOUTH, NOOP]))  # agent 1 to (1, 6)
    env.step(np.array([NOOP, NORTH]))  # agent 2 tries to enter (1, 6)
    assert env.pos[1].tolist() == ([2, 6] if block else [1, 6])


def test_moves_off_the_grid_are_no_ops() -> None:
    env = CheckersEnv(seed=0)
    env.step(np.array([NORTH, SOUTH]))
    env.step(np.array([EAST, EAST]))
    env.step(np.array([EAST, EAST]))
    assert env.pos.tolist() == [[0, 7], [2, 7]]


def test_observation_window_at_the_top_border() -> None:
    env = CheckersEnv(seed=0)
    obs = env.get_obs()
    assert obs.shape == (2, 47)
    assert obs[0, :2].tolist() == pytest.approx([0.0, 6 / 7])
    win = obs[0, 2:].reshape(3, 3, 5)  # rows -1..1, cols 5..7 around (0, 6); lemon, apple, a1, a2, wall
    expected = np.zeros((3, 3, 5))
    expected[0, :, 4] = 1  # above the grid
    expected[1, 0, 0] = 1  # lemon at (0, 5)
    expected[1, 1, 2] = 1  # agent 1 itself
    expected[2, 0, 1] = 1  # apple at (1, 5)
    np.testing.assert_array_equal(win, expected)
    win2 = obs[1, 2:].reshape(3, 3, 5)
    assert win2[1, 1, 3] == 1 and win2[2, :, 4].all() and win2[0, 0, 1] == 1  # agent 2, floor, apple (1, 5)
    state = env.get_state()
    assert state.shape == (96,) and state[:24].sum() == 9 and state[48 + 6] == 1 and state[72 + 22] == 1


def test_intended_play_ends_when_no_apples_remain_and_leaves_the_top_lemons() -> None:
    env = CheckersEnv(seed=0)
    total = 0.0
    for t, a in enumerate(INTENDED):
        r, done, info = env.step(np.array(a))
        total += r
        assert done == (t == len(INTENDED) - 1)
    assert "episode_limit" not in info
    assert info == {"agent1_apples": 9, "agent1_lemons": 0, "agent2_apples": 0, "agent2_lemons": 6}
    assert env.lemons.nonzero()[0].tolist() == [0, 0, 0]  # the three top-row lemons remain
    assert total == pytest.approx(90 - 6 - STEP * len(INTENDED))


def test_truncation_after_the_limit() -> None:
    env = CheckersEnv(seed=0, episode_limit=100)
    for t in range(100):
        r, terminated, truncated, info = step_single(env, np.array([NOOP, NOOP]))
        assert truncated == (t == 99) and not terminated
    assert info["episode_limit"] is True and info["agent1_apples"] == 0
    env.reset()
    assert env.t == 0 and env.apples.sum() == 9 and env.pos.tolist() == [[0, 6], [2, 6]]


def test_no_randomness_seeds_do_not_matter() -> None:
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 5, (100, 2))
    runs = []
    for seed in (0, 1):
        env = ENVS.get("checkers")(seed=seed)
        runs.append([(env.step(a)[0], env.get_obs().tobytes()) for a in acts])
    assert runs[0] == runs[1]


def test_yaml_declares_every_constructor_key() -> None:
    cfg = check_yaml_declares_constructor_defaults(CONFIG / "checkers.yaml", CheckersEnv, framework_args=("seed",))
    assert cfg["env"] == "checkers"
