"""DIALS traffic-light grid (Suau et al. 2022, App. D, F; spec sheet §1), as the §1.14 cellular-automaton SURROGATE.

This is not the authors' SUMO simulator: every result on it is labelled surrogate (the final info of each episode
carries ``surrogate_traffic_model = 1``, which the runner logs as ``*_surrogate_traffic_model_mean``). Absolute
returns are not comparable with the paper's curves (spec §1.14 "What differs from the SUMO version").
``traffic_model: sumo`` builds the SUMO global simulator of ``concord.envs.dials_traffic_sumo`` instead.

Layout (§1.2): a √N×√N grid of signalised intersections, agent i = row·√N + col, row 0 the southernmost. Region i
is intersection i and its 4 incoming lanes, ordered [W, S, E, N] (the approach from the west is the eastbound lane,
...); lanes are 10 cells of 10 m, cell 0 at the stop line, at most one vehicle per cell, speed v in {0, 1} (×10 m/s).
No turning: a vehicle leaving lane k of intersection i enters lane k of the next intersection in its direction, or
an exit sink at the boundary.

One step of a region (§1.14, §1.6), synchronous on the occupancy at the start of the step:
1. lights: action 1 = switch when not yellow (yellow of the old axis for 3 steps, actions ignored while yellow and
   on the first new green step), 0 = keep; phase reset to NS green, timer 0, every episode (§4.1);
2. the vehicle in cell 0 crosses if its axis is green (yellow is red) and the downstream lane's cell 9 was empty;
3. a vehicle in cell c ≥ 1 moves to c − 1 if that cell was empty (v = 1), otherwise stays (v = 0);
4. an arriving vehicle enters cell 9 (v = 1) if cell 9 was empty; a refused boundary arrival waits in the entry's
   FIFO backlog (§4.3; each entry draws Bernoulli(``inflow_prob``) per step into it). [X] the backlog inserts on
   the start-of-step rule of every other arrival (the spec's step 4 checks cell 9 after the moves), so that one
   local rule serves inner and entry lanes;
5. observation (§1.7): cells 0–8 of the 4 lanes (36 bits) then the light one-hot [EW green, EW yellow, NS yellow,
   NS green]; reward (§1.8): mean v of the vehicles on the 4 lanes, 0 if none.

Influence sources u_i (§1.9, App. A): what crosses the region's boundary. Per incoming lane an *arrival attempt*
(a vehicle is at the upstream stop line with green, or the entry backlog is non-empty), and, with
``spillback_influence`` (default), per lane whether the *downstream* lane's cell 9 is occupied. The paper defines
u_i as every variable outside the region that directly affects x_i (App. A), which the downstream cell is (rule 2);
the authors' code models only the 4 arrivals and gives the local simulator free exits (spec §1.10, §1.11.2), which
``spillback_influence: false`` reproduces. Arrival attempts, not arrivals, are the sources, so that the local
acceptance rule (4) is the same in the GS and the IALS. The d-set is the 36 observed lane cells at the current
step (spec §1.9, App. I: history did not help); u_t is produced during t -> t+1 (spec §4.2). [X] arrivals in the
local simulator enter at v = 1 like every GS arrival (the code's 9.5 / 3 m/s are SUMO-specific, §1.10).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.local_form import LocalFormEnv, LocalModel, LocalState
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

log = logging.getLogger(__name__)

CELLS = 10  # [C] 100 m lanes of 10 m cells
N_LANES = 4  # [W, S, E, N] approaches
LANE_AXIS = np.array([1, 0, 1, 0])  # 0 = NS axis, 1 = EW axis; W/E approaches move east/west
SWITCH_TIME = 3  # [C] yellow lasts 3 steps
NS, EW = 0, 1
TRAFFIC_MODELS = ("surrogate", "sumo")  # surrogate: this module; sumo: concord.envs.dials_traffic_sumo (a GS only)


def light_update(axis: np.ndarray, yellow: np.ndarray, timer: np.ndarray, a: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§1.6 switch logic for ``(n,)`` lights: ``axis`` is the axis that is (or, while yellow, will be) green."""
    switch = (a == 1) & ~yellow  # (n,)
    timer = np.where(yellow, timer + 1, timer)
    yellow = (yellow & (timer < SWITCH_TIME)) | switch
    return np.where(switch, 1 - axis, axis), yellow, np.where(switch, 0, timer)


def green_lanes(axis: np.ndarray, yellow: np.ndarray) -> np.ndarray:
    """``(n, 4)`` bool: the lanes whose axis is green (yellow counts as red)."""
    return ~yellow[..., None] & (LANE_AXIS == axis[..., None])


class TrafficRegion(LocalModel):
    """One intersection and its 4 incoming lanes (the module docstring's rules 1–5)."""

    obs_shape = N_LANES * (CELLS - 1) + 4
    n_actions = 2
    n_classes = 2
    dset_shape = N_LANES * (CELLS - 1)
    noise_size = 0
    reset_noise_size = 0
    recurrent_dset = False

    def __init__(self, episode_limit: int = 300, spillback_influence: bool = True) -> None:
        self.episode_limit = int(episode_limit)
        self.spillback = bool(spillback_influence)
        self.n_sources = 2 * N_LANES if self.spillback else N_LANES

    def reset(self, noise: np.ndarray) -> LocalState:
        n = len(noise)
        return {"occ": np.zeros((n, N_LANES, CELLS), bool), "v": np.zeros((n, N_LANES, CELLS), np.float32),
                "axis": np.full(n, NS, np.int64), "yellow": np.zeros(n, bool), "timer": np.zeros(n, np.int64)}

    def step(self, x: LocalState, a: np.ndarray, u: np.ndarray, noise: np.ndarray
             ) -> tuple[LocalState, np.ndarray, np.ndarray]:
        axis, yellow, timer = light_update(x["axis"], x["yellow"], x["timer"], a)
        occ = x["occ"]  # (n, 4, 10) at the start of the step
        arrive = u[:, :N_LANES] == 1  # (n, 4)
        blocked = u[:, N_LANES:] == 1 if self.spillback else np.zeros_like(arrive)
        cross = occ[..., 0] & green_lanes(axis, yellow) & ~blocked  # (n, 4)
        move = occ[..., 1:] & ~occ[..., :-1]  # (n, 4, 9): the vehicle in cell c + 1 moves to c
        new = np.zeros_like(occ)
        new[..., :-1] |= move
        new[..., 1:] |= occ[..., 1:] & ~move
        new[..., 0] |= occ[..., 0] & ~cross
        v = np.zeros(occ.shape, np.float32)
        v[..., :-1] = move
        enter = arrive & ~occ[..., -1]  # (n, 4)
        new[..., -1] |= enter
        v[..., -1] = np.maximum(v[..., -1], enter)
        y = {"occ": new, "v": v, "axis": axis, "yellow": yellow, "timer": timer}
        count = new.sum((1, 2))  # (n,)
        reward = np.where(count > 0, (v * new).sum((1, 2)) / np.maximum(count, 1), 0.0).astype(np.float32)
        return y, reward, self.observe(y)

    def observe(self, x: LocalState) -> np.ndarray:
        n = len(x["axis"])
        ax, y = x["axis"], x["yellow"]
        light = np.stack([~y & (ax == EW), y & (ax == NS), y & (ax == EW), ~y & (ax == NS)], -1)  # (n, 4)
        return np.concatenate([x["occ"][..., : CELLS - 1].reshape(n, self.dset_shape), light], -1).astype(np.float32)


def setup_grid(env: LocalFormEnv, n_agents: int, inflow_prob: float, episode_limit: int,
               spillback_influence: bool) -> int:
    """Check a grid's arguments (one-line errors) and set the sizes every traffic model shares; returns √N."""
    side = math.isqrt(int(n_agents))
    if side * side != n_agents or side < 1:
        raise ConfigError(f"dials_traffic: n_agents must be a perfect square (4, 25, 49, 100), got {n_agents}")
    if not 0.0 <= inflow_prob <= 1.0 or episode_limit < 1:
        raise ConfigError("dials_traffic: inflow_prob must be in [0, 1] and episode_limit >= 1")
    env.local = env.local_model(n_agents=n_agents, inflow_prob=inflow_prob, episode_limit=episode_limit,
                                spillback_influence=spillback_influence)
    env.side, env.n_agents, env.n_actions = side, int(n_agents), 2
    env.episode_limit, env.inflow_prob = int(episode_limit), float(inflow_prob)
    env.obs_shape, env.state_shape = env.local.obs_shape, env.n_agents * env.local.obs_shape
    env.extras_shapes = {"influence": (env.n_agents, env.local.n_sources), "agent_reward": (env.n_agents,)}
    return side


class _TrafficModel:
    """``traffic_model: sumo`` builds the SUMO GS (``concord.envs.dials_traffic_sumo``) instead of the surrogate.
    (A base of its own, so that ``inspect.signature(DialsTrafficEnv)`` still reads ``__init__``'s keywords.)"""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("traffic_model") == "sumo":
            from concord.envs.dials_traffic_sumo import DialsTrafficSumoEnv

            return DialsTrafficSumoEnv(*args, **{k: v for k, v in kwargs.items() if k != "traffic_model"})
        return super().__new__(cls)


@register_env("dials_traffic")
class DialsTrafficEnv(_TrafficModel, LocalFormEnv):
    """A batch of ``num_envs`` √N×√N traffic grids (the surrogate GS); team reward = mean of the agents' rewards."""

    def __init__(self, num_envs: int = 1, seed: Seed = None, n_agents: int = 4, inflow_prob: float = 0.1,
                 episode_limit: int = 300, spillback_influence: bool = True, *,
                 traffic_model: str = "surrogate") -> None:
        if traffic_model not in TRAFFIC_MODELS:
            raise ConfigError(f"dials_traffic: traffic_model must be one of {', '.join(TRAFFIC_MODELS)}, got "
                              f"{traffic_model!r}")
        super().__init__(num_envs, seed)
        side = setup_grid(self, n_agents, inflow_prob, episode_limit, spillback_influence)
        # neighbours along each lane's direction of travel: upstream feeds lane k, downstream receives from it
        n, ids = side, np.arange(self.n_agents)
        row, col = ids // n, ids % n
        west, east = np.where(col > 0, ids - 1, -1), np.where(col < n - 1, ids + 1, -1)
        south, north = np.where(row > 0, ids - n, -1), np.where(row < n - 1, ids + n, -1)
        self.upstream = np.stack([west, south, east, north], 1)  # (N, 4): W lane fed from the west, ...
        self.downstream = np.stack([east, north, west, south], 1)  # (N, 4)
        self.entry = self.upstream < 0  # (N, 4) boundary entry lanes (4√N of them)
        E, N = self.num_envs, self.n_agents
        self.x: LocalState = {k: np.repeat(v[None], E, 0) for k, v in self.local.reset(np.zeros((N, 0))).items()}
        self.backlog = np.zeros((E, N, N_LANES), np.int64)  # (E, N, 4) vehicles waiting to enter (entry lanes)
        log.info("dials_traffic is the cellular-automaton SURROGATE of the spec sheet §1.14, not SUMO")

    @classmethod
    def local_model(cls, n_agents: int = 4, inflow_prob: float = 0.1, episode_limit: int = 300,
                    spillback_influence: bool = True, traffic_model: str = "surrogate") -> TrafficRegion:
        if traffic_model == "sumo":
            from concord.envs.dials_traffic_sumo import DialsTrafficSumoEnv

            return DialsTrafficSumoEnv.local_model(n_agents, inflow_prob, episode_limit, spillback_influence)
        return TrafficRegion(episode_limit, spillback_influence)

    @classmethod
    def check_available(cls, env_args: dict[str, Any]) -> None:
        """``traffic_model: sumo`` needs the ``sumo`` extra (a one-line ``ConfigError`` naming it)."""
        if env_args.get("traffic_model") == "sumo":
            from concord.envs.dials_traffic_sumo import import_sumo

            import_sumo()

    def get_env_info(self) -> dict[str, Any]:
        return {**super().get_env_info(), "state_is_obs_concat": True}

    def local_states(self, env_ids: Any) -> LocalState:
        return {k: v[env_ids].copy() for k, v in self.x.items()}

    # ----------------------------------------------------------------- interface
    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.int64)
        fresh = self.local.reset(np.zeros((self.n_agents, 0)))
        for k, v in fresh.items():
            self.x[k][ids] = v
        self.backlog[ids] = 0
        self.t[ids] = 0
        k, N = len(ids), self.n_agents
        return self._env_obs(ids, np.zeros((k, N, self.local.n_sources), np.float32), np.zeros((k, N), np.float32))

    def influence(self, env_ids: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every region's u_i ``(k, N, M)`` for this step from the global state, and the entry arrivals drawn
        into the backlogs ``(k, N, 4)``; consumes the arrival draws of envs ``env_ids``."""
        k, N = len(env_ids), self.n_agents
        occ = self.x["occ"][env_ids]  # (k, N, 4, 10)
        draws = self.rngs.uniform(env_ids, int(self.entry.sum()))  # (k, 4√N)
        new_cars = np.zeros((k, N, N_LANES), np.int64)
        new_cars[:, self.entry] = draws < self.inflow_prob
        backlog = self.backlog[env_ids] + new_cars  # (k, N, 4)
        axis, yellow, _ = light_update(self.x["axis"][env_ids], self.x["yellow"][env_ids],
                                       self.x["timer"][env_ids], actions)  # (k, N): the lights of this step
        up = np.maximum(self.upstream, 0)  # (N, 4)
        lane = np.arange(N_LANES)
        at_line = occ[:, up, lane, 0] & green_lanes(axis, yellow)[:, up, lane]  # (k, N, 4) upstream can cross
        attempt = np.where(self.entry, backlog > 0, at_line)
        u = [attempt]
        if self.local.spillback:
            down = np.maximum(self.downstream, 0)
            u.append((self.downstream >= 0) & occ[:, down, lane, CELLS - 1])  # (k, N, 4)
        return np.concatenate(u, -1).astype(np.int64), backlog

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.int64)
        k, N = len(ids), self.n_agents
        act = np.asarray(actions, dtype=np.int64).reshape(k, N)
        u, backlog = self.influence(ids, act)
        x = {key: v[ids].reshape(k * N, *v.shape[2:]) for key, v in self.x.items()}
        inserted = self.entry & (u[..., :N_LANES] == 1) & ~self.x["occ"][ids][..., -1]  # (k, N, 4)
        y, reward, obs = self.local.step(x, act.reshape(-1), u.reshape(k * N, self.local.n_sources),
                                         np.zeros((k * N, 0)))
        for key, v in y.items():
            self.x[key][ids] = v.reshape(k, N, *v.shape[1:])
        self.backlog[ids] = backlog - inserted
        reward = reward.reshape(k, N)
        return self._time_limit_result(
            ids, self._env_obs(ids, u.astype(np.float32), reward, obs.reshape(k, N, self.obs_shape)),
            reward.mean(1) if k else reward.sum(1),
            lambda e: {"surrogate_traffic_model": 1, "episode_limit": True})

    def _env_obs(self, ids: np.ndarray, u: np.ndarray, reward: np.ndarray, obs: np.ndarray | None = None) -> EnvObs:
        k, N = len(ids), self.n_agents
        if obs is None:
            flat = {key: v[ids].reshape(k * N, *v.shape[2:]) for key, v in self.x.items()}
            obs = self.local.observe(flat).reshape(k, N, self.obs_shape)
        return EnvObs(obs=obs, state=obs.reshape(k, self.state_shape), avail_actions=np.ones((k, N, 2), bool),
                      extras={"influence": u, "agent_reward": reward.astype(np.float32)})
