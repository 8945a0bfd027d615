"""Checkers (LAN, Avalos et al. 2022, §5.3, Fig. 5; the domain of VDN, Sunehag et al. 2018).

Rules [P] (lan.md §5.3): two agents; eating an apple gives +10 to agent 1 and +1 to agent 2,
eating a lemon -10 and -1; both receive the sum of the two agents' rewards. Each agent observes
its location and a 3x3 window around it. The episode ends when no apples remain (termination)
or after 100 steps (truncation).

Defaults from ma-gym's Checkers [C] or chosen [X] (env_spec_sheet.md §4), the last three yaml keys:
- layout [C], 3 x 8, agent 1 at (0, 6) and agent 2 at (2, 6); ``A`` apple, ``L`` lemon::

      A L A L A L . .
      L A L A L A . .
      A L A L A L . .

  Agent 2 has to clear the lemons of rows 1 and 2 so that agent 1 can reach every apple without
  eating a lemon; the optimal play leaves the three lemons of the top row (LAN Fig. 5b);
- actions [X]: 0 no-op, 1 north, 2 south, 3 west, 4 east (the order of the other grid domains;
  ma-gym orders them down, left, up, right, no-op); a move off the grid is a no-op; food is eaten
  on entering its cell; agent 1 moves before agent 2 [C];
- ``agents_block`` = true [C]: a move into the other agent's cell fails;
- ``step_cost`` = 0.01 [C]: each agent pays it every step, so the team pays 0.02;
- ``episode_limit`` = 100 [P];
- observation [C]: (row / 2, col / 7), then the 3x3 window as 3x3x5 one-hot (lemon, apple,
  agent 1, agent 2, wall), flattened row, column, channel; cells off the grid are marked "wall"
  [X] (ma-gym leaves them all zero, although it declares the channel);
- state [X]: apple and lemon maps (3 x 8 each) and one-hot positions of both agents (3 x 8 each).
No randomness: the layout and starts are fixed. Metrics on the last step: apples and lemons eaten
by each agent.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from concord.envs.base import MultiAgentEnv
from concord.envs.gridworld import MOVE_DELTAS, NOOP, parse_layout
from concord.errors import ConfigError
from concord.registry import register_env

LAYOUT = """
    A L A L A L . .
    L A L A L A . .
    A L A L A L . .
"""
STARTS = np.array([[0, 6], [2, 6]])  # (2, 2) agent 1, agent 2 [C]
APPLE_REWARD = np.array([10.0, 1.0])  # [P] agent 1, agent 2
LEMON_REWARD = np.array([-10.0, -1.0])  # [P]
N_ACTIONS = 5
LEMON, APPLE, AGENT1, AGENT2, WALL = range(5)  # observation channels [C]


@register_env("checkers")
class CheckersEnv(MultiAgentEnv):
    """The two-agent apples-and-lemons grid (a single, deterministic env)."""

    def __init__(
        self,
        seed: int | None = None,
        agents_block: bool = True,
        step_cost: float = 0.01,
        episode_limit: int = 100,
    ) -> None:
        super().__init__(seed)
        if episode_limit < 1:
            raise ConfigError("checkers: episode_limit must be >= 1")
        self.n_agents = 2
        self.n_actions = N_ACTIONS
        self.episode_limit = int(episode_limit)
        self.agents_block = bool(agents_block)
        self.step_cost = float(step_cost)
        grid = parse_layout(LAYOUT)
        self.height, self.width = grid.shape
        self.start_apples = grid == "A"  # (3, 8)
        self.start_lemons = grid == "L"
        self.reset()

    def reset(self) -> None:
        self.apples = self.start_apples.copy()  # (H, W) bool
        self.lemons = self.start_lemons.copy()
        self.pos = STARTS.copy()  # (2, 2)
        self.t = 0
        self.eaten = np.zeros((2, 2), dtype=np.int64)  # [agent, (apples, lemons)]

    def step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        act = np.asarray(actions, dtype=np.int64).reshape(2)
        reward = -self.step_cost * 2
        for i in range(2):  # sequential: agent 1 first [C]
            there = self.pos[i] + MOVE_DELTAS[act[i]]
            inside = 0 <= there[0] < self.height and 0 <= there[1] < self.width
            if act[i] == NOOP or not inside:
                continue
            if self.agents_block and (there == self.pos[1 - i]).all():
                continue
            self.pos[i] = there
            r, c = there
            if self.apples[r, c]:
                self.apples[r, c] = False
                self.eaten[i, 0] += 1
                reward += APPLE_REWARD[i]
            elif self.lemons[r, c]:
                self.lemons[r, c] = False
                self.eaten[i, 1] += 1
                reward += LEMON_REWARD[i]
        self.t += 1
        terminated = not self.apples.any()
        info: dict[str, Any] = {}
        if terminated or self.t >= self.episode_limit:
            info = {
                "agent1_apples": int(self.eaten[0, 0]),
                "agent1_lemons": int(self.eaten[0, 1]),
                "agent2_apples": int(self.eaten[1, 0]),
                "agent2_lemons": int(self.eaten[1, 1]),
            }
            if not terminated:
                info["episode_limit"] = True
        return float(reward), terminated or self.t >= self.episode_limit, info

    def _layers(self) -> np.ndarray:
        """``(H + 2, W + 2, 5)`` one-hot cell contents, padded by one ring of wall."""
        layers = np.zeros((self.height + 2, self.width + 2, 5), dtype=np.float32)
        layers[..., WALL] = 1.0
        inner = layers[1:-1, 1:-1]
        inner[..., WALL] = 0.0
        inner[..., LEMON] = self.lemons
        inner[..., APPLE] = self.apples
        inner[self.pos[0, 0], self.pos[0, 1], AGENT1] = 1.0
        inner[self.pos[1, 0], self.pos[1, 1], AGENT2] = 1.0
        return layers

    def get_obs(self) -> np.ndarray:
        layers = self._layers()
        obs = np.zeros((2, 2 + 9 * 5), dtype=np.float32)  # (n_agents, 47)
        for i, (r, c) in enumerate(self.pos):
            obs[i, 0] = r / (self.height - 1)
            obs[i, 1] = c / (self.width - 1)
            obs[i, 2:] = layers[r : r + 3, c : c + 3].reshape(-1)
        return obs

    def get_state(self) -> np.ndarray:
        agents = np.zeros((2, self.height, self.width), dtype=np.float32)
        agents[0, self.pos[0, 0], self.pos[0, 1]] = 1.0
        agents[1, self.pos[1, 0], self.pos[1, 1]] = 1.0
        return np.concatenate([self.apples.reshape(-1), self.lemons.reshape(-1), agents.reshape(-1)]).astype(
            np.float32
        )  # (4 * H * W,)

    def get_avail_actions(self) -> np.ndarray:
        return np.ones((2, N_ACTIONS), dtype=bool)
