"""Battle[N] (VAST, Phan et al. 2021, §5.1, Fig. 2c): N learners against N scripted opponents.

Rules [P] (vast.md §5.1): every agent starts with 3 HP and regains ``regen`` per step while
0 < HP < 3; an agent with HP = 0 is dead. Actions: no-op, move N/S/W/E, attack one opponent
standing on the *same* cell (it loses 1 HP), so the two armies may share cells. Team reward:
+1 per successful attack, -0.1 per attack on a cell without an opponent, -0.5 each time a learner
is hit. 7x7 field of view. The episode ends after 100 steps (truncation) or when one army is dead
(termination). Metric: learner kills - opponent kills.

Defaults taken from the authors' code [C] or chosen [X] (env_spec_sheet.md §3), each a yaml key:
- ``regen`` = 0.01 [P]; the authors' code uses 0.1 [C];
- ``kill_reward`` = 0 [C]: a killing blow earns the +1 of a hit and no bonus ([X] in the paper);
- ``death_penalty`` = 0 [C]: being killed costs the -0.5 of the hit and no more ([X]);
- ``opponent_west_drift`` = true [C]: the scripted opponents' westward drift in the east half.
Not keys (no alternative is in use): the code's maps and fixed facing formations (10x10, 14x14,
18x18) [C]; the opponent policy [C] (attack when on a learner's cell, else a uniform pick among
the moves toward every cell with learners in sight, plus the drift, else a uniformly random
action); hits on a cell go, one at a time, to a uniformly random *living* opponent there [C];
learners act before opponents, and regeneration precedes an agent's action [C]; the observation
[C], 4 channels of 7x7 (own HP / 3 at the centre, allies' HP / 3, opponents' HP / 3, out of
bounds) and the state [C], 2 channels over the map (learners' and opponents' HP / 3 per cell).
The team reward is the plain sum of the events above; the authors' code divides it by N [C].

Dead learners observe zeros and have only the no-op available. Per-step extras: the learners'
``positions`` ``(n_agents, 2)`` as (row, col), for spatial sub-team assignment (VAST §5.2).
The batch is stepped as numpy arrays over (envs, agents); the only Python loops are over the
envs when drawing random numbers and over attack "rounds" (the k-th attacker on each cell).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.gridworld import MOVE_DELTAS, NOOP, gather_windows, parse_layout, pick_one_per_group
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

ATTACK = 5
N_ACTIONS = 6  # no-op, N, S, W, E, attack
MAX_HP = 3.0  # [P]
VIEW = 7  # [P] 7x7 field of view
N_OBS_CHANNELS = 4
ATTACK_REWARD = 1.0  # [P] per successful attack
MISS_PENALTY = 0.1  # [P] attacking a cell with no opponent
HIT_PENALTY = 0.5  # [P] per hit received

# The authors' formations [C]: 'A' learners (west), 'O' opponents (east); learner i starts on the
# i-th 'A' in reading order. Row 0 is the top (north) edge.
LAYOUTS = {
    20: """
        . . . . . . . . . .
        . . . . . . . . . .
        . A A . . . . O O .
        A A A A . . O O O O
        A A A A . . O O O O
        A A A A . . O O O O
        A A A A . . O O O O
        . A A . . . . O O .
        . . . . . . . . . .
        . . . . . . . . . .
    """,
    40: """
        . . . . . . . . . . . . . .
        . . . . . . . . . . . . . .
        . . . . . . . . . . . . . .
        . A A A A . . . . O O O O .
        . A A A A . . . . O O O O .
        A A A A A A . . O O O O O O
        A A A A A A . . O O O O O O
        A A A A A A . . O O O O O O
        A A A A A A . . O O O O O O
        . A A A A . . . . O O O O .
        . A A A A . . . . O O O O .
        . . . . . . . . . . . . . .
        . . . . . . . . . . . . . .
        . . . . . . . . . . . . . .
    """,
    80: """
        . . . . . . . . . . . . . . . . . .
        . . . . . . . . . . . . . . . . . .
        . . . . . . . . . . . . . . . . . .
        . . A A A A . . . . . . O O O O . .
        . A A A A A A . . . . O O O O O O .
        . A A A A A A . . . . O O O O O O .
        A A A A A A A A . . O O O O O O O O
        A A A A A A A A . . O O O O O O O O
        A A A A A A A A . . O O O O O O O O
        A A A A A A A A . . O O O O O O O O
        A A A A A A A A . . O O O O O O O O
        A A A A A A A A . . O O O O O O O O
        . A A A A A A . . . . O O O O O O .
        . A A A A A A . . . . O O O O O O .
        . . A A A A . . . . . . O O O O . .
        . . . . . . . . . . . . . . . . . .
        . . . . . . . . . . . . . . . . . .
        . . . . . . . . . . . . . . . . . .
    """,
}


@register_env("battle")
class BattleEnv(NumpyVecEnv):
    """A batch of ``num_envs`` Battle[``n_agents``] games stepped together."""

    def __init__(
        self,
        num_envs: int = 1,
        seed: Seed = None,
        n_agents: int = 20,
        regen: float = 0.01,
        kill_reward: float = 0.0,
        death_penalty: float = 0.0,
        opponent_west_drift: bool = True,
        episode_limit: int = 100,
    ) -> None:
        if n_agents not in LAYOUTS:
            raise ConfigError(f"battle: n_agents must be one of {sorted(LAYOUTS)}, got {n_agents}")
        if num_envs < 1 or episode_limit < 1 or regen < 0:
            raise ConfigError("battle: num_envs and episode_limit must be >= 1 and regen >= 0")
        super().__init__(num_envs, seed)
        self.n_agents = int(n_agents)
        self.n_actions = N_ACTIONS
        self.episode_limit = int(episode_limit)
        self.extras_shapes = {"positions": (self.n_agents, 2)}
        self.regen = float(regen)
        self.kill_reward = float(kill_reward)
        self.death_penalty = float(death_penalty)
        self.west_drift = bool(opponent_west_drift)

        grid = parse_layout(LAYOUTS[self.n_agents])
        self.height, self.width = grid.shape
        self.obs_shape = N_OBS_CHANNELS * VIEW * VIEW
        self.state_shape = 2 * self.height * self.width
        self.start = np.argwhere(grid == "A")  # (N, 2) row-major order
        self.opp_start = np.argwhere(grid == "O")  # (N, 2)
        self.max_pos = np.array([self.height - 1, self.width - 1])
        r = VIEW // 2
        self.oob = np.ones((self.height + 2 * r, self.width + 2 * r))  # (Hp, Wp) 1 outside the map
        self.oob[r:-r, r:-r] = 0.0

        E, N = self.num_envs, self.n_agents
        self.pos = np.repeat(self.start[None], E, 0)  # (E, N, 2)
        self.hp = np.full((E, N), MAX_HP)  # (E, N)
        self.opp_pos = np.repeat(self.opp_start[None], E, 0)  # (E, N, 2)
        self.opp_hp = np.full((E, N), MAX_HP)  # (E, N)
        self.kills = np.zeros(E, dtype=np.int64)  # opponents killed by learners
        self.deaths = np.zeros(E, dtype=np.int64)  # learners killed by opponents

    # ----------------------------------------------------------------- interface
    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.int64)
        self.pos[ids] = self.start
        self.opp_pos[ids] = self.opp_start
        self.hp[ids] = MAX_HP
        self.opp_hp[ids] = MAX_HP
        self.t[ids] = 0
        self.kills[ids] = 0
        self.deaths[ids] = 0
        return self._observe(ids)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.int64)
        k, N, HW = len(ids), self.n_agents, self.height * self.width
        act = np.asarray(actions, dtype=np.int64).reshape(k, N)  # (k, N)
        pos, hp = self.pos[ids], self.hp[ids]  # (k, N, 2), (k, N)
        opos, ohp = self.opp_pos[ids], self.opp_hp[ids]
        env_off = HW * np.arange(k)[:, None]  # (k, 1) offset of each env in flat (k*HW,) arrays

        # --- learners: regenerate, then move or attack (dead learners do nothing)
        alive = hp > 0  # (k, N)
        act = np.where(alive, act, NOOP)
        hp = np.where(alive, np.minimum(hp + self.regen, MAX_HP), hp)
        pos = self._move(pos, np.where(act < ATTACK, act, NOOP))
        lcell = self._cell(pos)  # (k, N) cell ids within an env
        ocell = self._cell(opos)
        opp_there = np.zeros(k * HW, dtype=bool)  # living opponents before the attacks
        opp_there[(ocell + env_off)[ohp > 0]] = True
        attacking = act == ATTACK
        has_target = opp_there[lcell + env_off]  # (k, N)
        misses = (attacking & ~has_target).sum(1)  # (k,)
        n_att = np.bincount((lcell + env_off)[attacking & has_target], minlength=k * HW)  # (k*HW,)
        ohp, hits, kills = self._resolve_attacks(ids, n_att, ocell, ohp)

        # --- opponents: regenerate, attack a learner on their cell, else move [C]
        oalive = ohp > 0
        ohp = np.where(oalive, np.minimum(ohp + self.regen, MAX_HP), ohp)
        learner_there = np.zeros(k * HW, dtype=bool)  # living learners, map built once [C]
        learner_there[(lcell + env_off)[hp > 0]] = True
        on_learner = oalive & learner_there[ocell + env_off]  # (k, N)
        n_oatt = np.bincount((ocell + env_off)[on_learner], minlength=k * HW)
        hp, hits_taken, deaths = self._resolve_attacks(ids, n_oatt, lcell, hp)
        omove = self._opponent_moves(ids, opos, learner_there.reshape(k, self.height, self.width))
        opos = self._move(opos, np.where(oalive & ~on_learner, omove, NOOP))

        reward = (
            ATTACK_REWARD * hits
            - MISS_PENALTY * misses
            + self.kill_reward * kills
            - HIT_PENALTY * hits_taken
            - self.death_penalty * deaths
        )  # (k,)
        self.pos[ids], self.hp[ids], self.opp_pos[ids], self.opp_hp[ids] = pos, hp, opos, ohp
        self.t[ids] += 1
        self.kills[ids] += kills
        self.deaths[ids] += deaths
        terminated = ~(hp > 0).any(1) | ~(ohp > 0).any(1)  # (k,)
        truncated = ~terminated & (self.t[ids] >= self.episode_limit)
        infos: list[dict[str, Any]] = []
        for j, e in enumerate(ids):
            info: dict[str, Any] = {}
            if terminated[j] or truncated[j]:
                kl, dl = int(self.kills[e]), int(self.deaths[e])
                info = {"kills": kl, "deaths": dl, "kills_minus_deaths": kl - dl}
                if truncated[j]:
                    info["episode_limit"] = True
            infos.append(info)
        return StepResult(
            obs=self._observe(ids),
            reward=reward.astype(np.float32),
            terminated=terminated,
            truncated=truncated,
            infos=infos,
        )

    # ----------------------------------------------------------------- dynamics
    def _move(self, pos: np.ndarray, moves: np.ndarray) -> np.ndarray:
        """Apply moves 0..4 to ``(k, N, 2)`` positions; a move off the map is a no-op."""
        return np.clip(pos + MOVE_DELTAS[moves], 0, self.max_pos)

    def _cell(self, pos: np.ndarray) -> np.ndarray:
        """``(k, N, 2)`` positions -> ``(k, N)`` cell ids ``row * W + col``."""
        return pos[..., 0] * self.width + pos[..., 1]

    def _resolve_attacks(
        self, ids: np.ndarray, n_att: np.ndarray, tcell: np.ndarray, thp: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hits on targets standing on attacked cells, one attacker at a time per cell [C].

        ``n_att`` ``(k*HW,)`` attackers per cell (env-major), ``tcell`` ``(k, M)`` the targets' cell
        ids within their env, ``thp`` ``(k, M)`` their HP. In round r every cell with more than r attackers hits one
        uniformly random target still alive there. Returns the new HP, hits and kills per env.
        """
        k, M = thp.shape
        HW = self.height * self.width
        flat = tcell + HW * np.arange(k)[:, None]  # (k, M)
        hits = np.zeros(k, dtype=np.int64)
        kills = np.zeros(k, dtype=np.int64)
        alive = thp > 0
        # hits that can land on a cell: min(attackers, total hits needed to kill everyone there)
        needed = np.bincount(flat[alive], weights=np.ceil(thp[alive]), minlength=n_att.size)
        rounds = np.minimum(n_att, needed).reshape(k, -1).max(1).astype(np.int64)  # (k,)
        if rounds.max() == 0:
            return thp, hits, kills
        keys = self.rngs.uniform(ids, rounds * M)  # (k, max_rounds * M)
        att_at = n_att[flat]  # (k, M) attackers on each target's cell
        for r in range(int(rounds.max())):
            valid = (thp > 0) & (att_at > r)
            if not valid.any():
                break
            chosen = pick_one_per_group(tcell, valid, keys[:, r * M : (r + 1) * M], HW)
            thp = np.where(chosen, np.maximum(thp - 1.0, 0.0), thp)
            hits += chosen.sum(1)
            kills += (chosen & (thp <= 0)).sum(1)
        return thp, hits, kills

    def _opponent_moves(self, ids: np.ndarray, opos: np.ndarray, learners: np.ndarray) -> np.ndarray:
        """The scripted opponents' moves [C]: ``(k, N)`` actions 0..4.

        Each cell holding learners within the 7x7 view adds one vote for each move that brings the
        opponent closer to it (two for a diagonal cell); an opponent in the east half adds one vote
        for west. The move is drawn with probability proportional to its votes; with no vote, one
        of the 6 actions is drawn uniformly (attack on a cell without learners does nothing).
        """
        k, N = opos.shape[:2]
        r = VIEW // 2
        integral = np.zeros((k, self.height + 2 * r + 1, self.width + 2 * r + 1))  # (k, Hp+1, Wp+1)
        integral[:, 1 + r : 1 + r + self.height, 1 + r : 1 + r + self.width] = learners
        integral = integral.cumsum(1).cumsum(2)
        e = np.arange(k)[:, None]
        row, col = opos[..., 0], opos[..., 1]  # top-left of the window in padded coordinates

        def count(r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
            """Learner cells in padded rows [r0, r1) x cols [c0, c1): ``(k, N)``."""
            return integral[e, r1, c1] - integral[e, r0, c1] - integral[e, r1, c0] + integral[e, r0, c0]

        votes = np.zeros((k, N, 5))  # (k, N, 5) over no-op, N, S, W, E
        votes[..., 1] = count(row, row + r, col, col + VIEW)  # learners north of it
        votes[..., 2] = count(row + r + 1, row + VIEW, col, col + VIEW)  # south
        votes[..., 3] = count(row, row + VIEW, col, col + r)  # west
        votes[..., 4] = count(row, row + VIEW, col + r + 1, col + VIEW)  # east
        if self.west_drift:
            votes[..., 3] += col >= self.width / 2
        total = votes.sum(-1)  # (k, N)
        u = self.rngs.uniform(ids, N)  # (k, N)
        by_vote = (u[..., None] * total[..., None] >= votes.cumsum(-1)).sum(-1)  # (k, N) in 0..4
        uniform = np.minimum((u * N_ACTIONS).astype(np.int64), N_ACTIONS - 1)
        uniform = np.where(uniform == ATTACK, NOOP, uniform)
        return np.where(total > 0, np.minimum(by_vote, 4), uniform)

    # ----------------------------------------------------------------- observations
    def _observe(self, ids: np.ndarray) -> EnvObs:
        k, N = len(ids), self.n_agents
        pos, hp = self.pos[ids], self.hp[ids]  # (k, N, 2), (k, N)
        opos, ohp = self.opp_pos[ids], self.opp_hp[ids]
        alive, oalive = hp > 0, ohp > 0
        r = VIEW // 2
        Hp, Wp = self.height + 2 * r, self.width + 2 * r
        off = Hp * Wp * np.arange(k)[:, None]  # (k, 1)
        lcell = (pos[..., 0] + r) * Wp + pos[..., 1] + r + off  # (k, N) flat padded cells
        ocell = (opos[..., 0] + r) * Wp + opos[..., 1] + r + off
        ally = np.bincount(lcell[alive], weights=hp[alive] / MAX_HP, minlength=k * Hp * Wp)
        enemy = np.bincount(ocell[oalive], weights=ohp[oalive] / MAX_HP, minlength=k * Hp * Wp)
        grid = np.stack(
            [ally.reshape(k, Hp, Wp), enemy.reshape(k, Hp, Wp), np.broadcast_to(self.oob, (k, Hp, Wp))], -1
        )  # (k, Hp, Wp, 3)
        win = gather_windows(grid, pos[..., 0], pos[..., 1], VIEW)  # (k, N, 3, 7, 7)
        obs = np.zeros((k, N, N_OBS_CHANNELS, VIEW, VIEW), dtype=np.float32)
        obs[:, :, 1:] = win
        own = np.where(alive, hp / MAX_HP, 0.0)  # (k, N)
        obs[:, :, 0, r, r] = own
        others = win[:, :, 0, r, r] - own  # allies on my cell, myself excluded
        obs[:, :, 1, r, r] = np.where(np.abs(others) < 1e-9, 0.0, others)
        obs[~alive] = 0.0

        HW = self.height * self.width
        soff = HW * np.arange(k)[:, None]  # (k, 1)
        state = np.concatenate(
            [
                np.bincount((self._cell(pos) + soff)[alive], hp[alive] / MAX_HP, k * HW).reshape(k, HW),
                np.bincount((self._cell(opos) + soff)[oalive], ohp[oalive] / MAX_HP, k * HW).reshape(k, HW),
            ],
            1,
        )  # (k, 2*H*W)
        avail = np.zeros((k, N, N_ACTIONS), dtype=bool)
        avail[alive] = True
        avail[..., NOOP] = True
        return EnvObs(
            obs=obs.reshape(k, N, -1),
            state=state.astype(np.float32),
            avail_actions=avail,
            extras={"positions": pos.astype(np.float32)},
        )
