"""DIALS traffic-light grid on SUMO (Suau et al. 2022, App. D, F; spec sheet §1.1–§1.9): the real traffic model
behind ``env_args.traffic_model: sumo`` of ``dials_traffic``, as a global simulator (GS) only.

Needs the optional extra ``pip install 'concord-marl[sumo]'`` (PyPI ``eclipse-sumo`` for ``netgenerate`` and
``libsumo``), imported lazily: without it ``check_available`` / the constructor raise a one-line ``ConfigError``.

Network (§1.2): ``netgenerate --grid`` of √N×√N traffic-light junctions 100 m apart plus a 100 m entry and exit
road at every row and column end, one lane per direction, 10 m/s, no left turns or U-turns (vehicles only drive
straight: each entry road has one straight route to the opposite exit road). The street lengths passed to
netgenerate (114.4 m inner, 107.2 m attached) make every lane exactly 100 m long to its stop line, so the 10 cells
of 10 m of the surrogate are the lane's 100 m. Agent i = row·√N + col controls junction i, row 0 the southernmost;
its incoming lanes are ordered [W, S, E, N] from the junctions' coordinates. Vehicle type (§1.4): IDM, accel 2.6,
decel 7.5, tau 1, minGap 2.5, length 5, maxSpeed 10, speedFactor 1 with speedDev 0.1; 1 s SUMO steps.

One step (§1.6, the surrogate's light logic ``light_update``): action 1 switches when not yellow (yellow of the old
axis for 3 steps, actions ignored while yellow and on the first new green step), 0 keeps; every light's 4-phase
static program [NS green, NS yellow, EW green, EW yellow] (durations of 10^6 s, so SUMO never advances it) is
driven with ``libsumo.trafficlight.setPhase``; then each entry road draws Bernoulli(``inflow_prob``) from the env's
Concord generator and a drawn vehicle is added with ``vehicle.add`` (depart lane free, speed 10 m/s; SUMO keeps
a refused insertion in its backlog, §1.5); then SUMO advances 1 s. Observation (§1.7): the occupancy of cells
0–8 of the 4 incoming lanes (cell = ⌊(lane length − front position) / 10 m⌋; junction-internal vehicles are not
shown) and the light one-hot, built by the surrogate's ``TrafficRegion.observe``, so layout and shapes are the
surrogate's. Reward (§1.8): mean speed / 10 m/s of the vehicles on the 4 incoming lanes, 0 if none.

Extras (as the surrogate's, for the DIALS runner): ``agent_reward`` (N,) and ``influence`` (N, 4 or 8): per incoming
lane whether a vehicle *entered* it during the step (§1.14's u definition; SUMO decides the insertion, so
entries, not attempts, are what it exposes), then with ``spillback_influence`` whether the downstream lane's
first 10 m (its cell 9) was occupied at the start of the step (0 at exit roads).

Seeding: every episode reloads SUMO (``libsumo.load``) with ``--seed`` drawn from the env's generator
(``concord.envs.seeding`` / ``numpy_vec``), which also draws the arrivals, so a seed fixes the trajectory and
``get_rng_state`` captures it between episodes. SUMO's own random state is not captured mid-episode. [X] No
warm SUMO step at reset (§1.12): the first observation is the empty network, as in the surrogate.

libsumo is one simulation per process. A batch holds its envs in this process only when it is a single env and no
other SUMO env of this process holds libsumo; otherwise every env of the batch runs in its own worker process
(stdlib ``multiprocessing``, spawned), so ``batch_size_run > 1`` works with every runner. Net and route files are
written to a temp dir per env batch, removed on ``close``.

Local form: there is no SUMO local simulator. ``local_model`` gives the region's sizes and reset observation (the
IALS workers of ``runner=dials`` build from them) but its ``step`` raises a ``ConfigError``: with this model use
``dials_mode=gs`` (or any other algorithm); ``dials`` / ``untrained_dials`` need ``traffic_model=surrogate``.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import tempfile
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.dials_traffic import CELLS, EW, N_LANES, NS, TrafficRegion, light_update, setup_grid
from concord.envs.local_form import LocalFormEnv, LocalState
from concord.envs.seeding import Seed
from concord.errors import ConfigError

log = logging.getLogger(__name__)

INSTALL = "pip install 'concord-marl[sumo]' (eclipse-sumo==1.28.0 libsumo==1.28.0)"
MAX_SPEED = 10.0  # [C] m/s: speed limit and vehicle maxSpeed, the reward's normaliser
INNER_LENGTH, ATTACH_LENGTH = 114.4, 107.2  # node distances giving 100 m lanes (netgenerate cuts 7.2 m per junction)
PHASES = ("NS_G", "NS_Y", "EW_G", "EW_Y")  # the program's phase order
LONG = 1_000_000  # s: phase duration, so SUMO never advances a phase itself
VTYPE = ('<vType id="concord" carFollowModel="IDM" accel="2.6" decel="7.5" tau="1.0" minGap="2.5" length="5" '
         'maxSpeed="10" speedFactor="1.0" speedDev="0.1"/>')  # [C] spec §1.4
NO_LOCAL = ("dials_traffic: traffic_model=sumo is a global simulator only (no SUMO local simulator): use "
            "dials_mode=gs with runner=dials, or traffic_model=surrogate for dials / untrained_dials")


def import_sumo() -> tuple[Any, str]:
    """``(libsumo, SUMO_HOME)``, or a one-line ``ConfigError`` naming the install command."""
    try:
        import libsumo
        import sumo
    except ImportError as e:
        raise ConfigError(f"dials_traffic traffic_model=sumo needs SUMO: {INSTALL}") from e
    return libsumo, sumo.SUMO_HOME


def phase_index(axis: np.ndarray, yellow: np.ndarray) -> np.ndarray:
    """The program phase of lights ``(axis, yellow)`` (``axis`` = the axis that is, or will be, green)."""
    return np.where(yellow, np.where(axis == EW, 1, 3), np.where(axis == NS, 0, 2))


@dataclass
class GridLayout:
    """What a simulation needs of a generated grid: file paths and the ids in agent / lane order."""

    net: str
    additional: str
    tls: list[str]  # (N,) junction of agent i
    lanes: list[list[str]]  # (N, 4) incoming lane ids, [W, S, E, N]
    lane_length: np.ndarray  # (N, 4) m
    downstream: np.ndarray  # (N, 4) agent whose lane k this lane's traffic enters, -1 at an exit
    entry_routes: list[tuple[int, int, str]]  # (agent, lane k, route id) per entry road, in a fixed order


def build_grid(side: int, workdir: str, sumo_home: str) -> GridLayout:
    """Write the √N×√N net (``netgenerate``), the vehicle type, straight routes and the 4-phase light programs
    into ``workdir``; return the layout."""
    net = os.path.join(workdir, "grid.net.xml")
    names = [f"{chr(65 + c)}{r}" for r in range(side) for c in range(side)]  # netgenerate's ids: column letter, row
    cmd = [os.path.join(sumo_home, "bin", "netgenerate"), "--grid", f"--grid.number={side}",
           f"--grid.length={INNER_LENGTH}", f"--grid.attach-length={ATTACH_LENGTH}", "--default.lanenumber=1",
           f"--default.speed={MAX_SPEED}", "--default.junctions.type=priority", f"--tls.set={','.join(names)}",
           "--no-turnarounds", "--no-left-connections", "--no-warnings", "--output-file", net]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SUMO_HOME": sumo_home})
    if done.returncode != 0:
        raise RuntimeError(f"netgenerate failed: {done.stderr.strip()}")
    root = ET.parse(net).getroot()
    xy = {j.get("id"): (float(j.get("x")), float(j.get("y"))) for j in root.iter("junction")}
    edges = {e.get("id"): (e.get("from"), e.get("to"), e.find("lane")) for e in root.iter("edge")
             if e.get("function") != "internal"}
    agent = {name: i for i, name in enumerate(names)}
    lanes = [[""] * N_LANES for _ in names]
    length = np.zeros((len(names), N_LANES))
    succ: dict[str, str] = {}  # edge -> the edge straight ahead
    for eid, (a, b, lane) in edges.items():
        if b not in agent:
            continue
        dx, dy = xy[b][0] - xy[a][0], xy[b][1] - xy[a][1]
        k = (0 if dx > 0 else 2) if abs(dx) > abs(dy) else (1 if dy > 0 else 3)  # from W (eastbound), S, E, N
        lanes[agent[b]][k] = lane.get("id")
        length[agent[b], k] = float(lane.get("length"))
        for out, (a2, b2, _) in edges.items():
            if a2 == b and (xy[b2][0] - xy[b][0]) * dx + (xy[b2][1] - xy[b][1]) * dy > 0:
                succ[eid] = out
    lane_agent = {lanes[i][k]: (i, k) for i in range(len(names)) for k in range(N_LANES)}
    downstream = np.full((len(names), N_LANES), -1, np.int64)
    for eid, nxt in succ.items():
        i, k = lane_agent[edges[eid][2].get("id")]
        j = lane_agent.get(edges[nxt][2].get("id"))
        downstream[i, k] = j[0] if j else -1
    routes, entry = [], []
    for eid, (a, _, lane) in sorted(edges.items()):
        if a in agent:
            continue  # not an entry road
        path = [eid]
        while path[-1] in succ:
            path.append(succ[path[-1]])
        rid = f"r_{eid}"
        routes.append(f'<route id="{rid}" edges="{" ".join(path)}"/>')
        entry.append((*lane_agent[lane.get("id")], rid))
    programs = []
    for name in names:
        axis_of_link: dict[int, int] = {}
        for c in root.iter("connection"):
            if c.get("tl") == name:
                i, k = lane_agent[f"{c.get('from')}_{c.get('fromLane')}"]
                axis_of_link[int(c.get("linkIndex"))] = EW if k in (0, 2) else NS
        order = [axis_of_link[n] for n in range(len(axis_of_link))]
        states = ["".join("G" if ax == NS else "r" for ax in order), "".join("y" if ax == NS else "r" for ax in order),
                  "".join("G" if ax == EW else "r" for ax in order), "".join("y" if ax == EW else "r" for ax in order)]
        phases = "".join(f'<phase duration="{LONG}" state="{s}" name="{p}"/>' for s, p in zip(states, PHASES))
        programs.append(f'<tlLogic id="{name}" type="static" programID="concord" offset="0">{phases}</tlLogic>')
    add = os.path.join(workdir, "grid.add.xml")
    with open(add, "w") as f:
        f.write(f"<additional>{VTYPE}{''.join(routes)}{''.join(programs)}</additional>\n")
    return GridLayout(net, add, names, lanes, length, downstream, entry)


_OWNER: list[Any] = []  # the SumoGrid holding this process's libsumo (libsumo is one simulation per process)


class SumoGrid:
    """One grid in this process's libsumo: ``reset(seed)`` and ``step(phases, arrivals)`` of the module docstring."""

    def __init__(self, layout: GridLayout) -> None:
        if _OWNER:
            raise RuntimeError("libsumo already runs a simulation in this process")
        self.sumo, _ = import_sumo()
        _OWNER.append(self)
        self.g = layout
        self.n = len(layout.tls)
        self.lane_flat = {lane: i * N_LANES + k for i, row in enumerate(layout.lanes) for k, lane in enumerate(row)}
        self.length_flat = layout.lane_length.reshape(-1)  # (N * 4,)
        self.started = False
        self.occ = np.zeros((self.n, N_LANES, CELLS), bool)

    def reset(self, seed: int) -> np.ndarray:
        """A new episode: SUMO reloaded with ``seed``, lights on NS green; the ``(N, 4, 10)`` occupancy (empty)."""
        s = self.sumo
        argv = ["-n", self.g.net, "-a", self.g.additional, "--step-length", "1", "--seed", str(int(seed)),
                "--time-to-teleport", "-1", "--no-step-log", "true", "--no-warnings", "true",
                "--xml-validation", "never"]
        (s.load if self.started else s.start)(argv if self.started else ["sumo", *argv])
        self.started = True
        for tls in self.g.tls:
            s.trafficlight.setProgram(tls, "concord")
            s.trafficlight.setPhase(tls, 0)
        self.phase = np.zeros(self.n, np.int64)
        self.lane_of: dict[str, str] = {}  # vehicle -> its lane after the last step
        self.added = 0
        self.occ = np.zeros((self.n, N_LANES, CELLS), bool)
        return self.occ.copy()

    def step(self, phases: np.ndarray, arrivals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Set the lights ``(N,)`` phase indices, add a vehicle on every entry road with ``arrivals`` set (entry
        order of the layout), advance 1 s; -> occupancy ``(N, 4, 10)``, rewards ``(N,)``, entered ``(N, 4)``,
        the number of collisions SUMO reported."""
        s = self.sumo
        for i in np.flatnonzero(phases != self.phase):
            s.trafficlight.setPhase(self.g.tls[i], int(phases[i]))
        self.phase = phases.copy()
        for (_, _, rid), go in zip(self.g.entry_routes, arrivals):
            if go:
                s.vehicle.add(f"v{self.added}", rid, typeID="concord", depart="now", departLane="free",
                              departSpeed=str(MAX_SPEED))
                self.added += 1
        s.simulationStep()
        for vid in s.simulation.getDepartedIDList():
            s.vehicle.subscribe(vid, (s.VAR_LANE_ID, s.VAR_LANEPOSITION, s.VAR_SPEED))
        res = s.vehicle.getAllSubscriptionResults()  # vehicle -> {variable: value}, every vehicle in the net
        vals = list(res.values())
        lane_of = {vid: var[s.VAR_LANE_ID] for vid, var in res.items()}
        where = np.array([self.lane_flat.get(lane, -1) for lane in lane_of.values()], np.int64)  # i * 4 + k
        on = where >= 0  # on an incoming lane, not inside a junction or on an exit road
        lane = where[on]
        pos = np.array([v[s.VAR_LANEPOSITION] for v in vals])[on]
        speed = np.array([v[s.VAR_SPEED] for v in vals])[on]
        new = np.array([self.lane_of.get(vid) != ln for vid, ln in lane_of.items()], bool)[on]
        cell = np.floor((self.length_flat[lane] - pos) / 10.0).astype(np.int64)
        seen = (cell >= 0) & (cell < CELLS)
        occ = np.zeros((self.n * N_LANES, CELLS), bool)
        occ[lane[seen], cell[seen]] = True
        occ = occ.reshape(self.n, N_LANES, CELLS)
        entered = np.zeros(self.n * N_LANES, bool)
        entered[lane[new]] = True
        entered = entered.reshape(self.n, N_LANES)
        region = lane // N_LANES
        count = np.bincount(region, minlength=self.n)
        speed = np.bincount(region, speed, minlength=self.n)
        self.lane_of, self.occ = lane_of, occ
        reward = np.where(count > 0, speed / np.maximum(count, 1) / MAX_SPEED, 0.0).astype(np.float32)
        return occ, reward, entered, int(s.simulation.getCollidingVehiclesNumber())

    def close(self) -> None:
        if self in _OWNER:
            if self.started:
                self.sumo.close()
            _OWNER.remove(self)


def _serve(conn: Any, layout: GridLayout) -> None:
    """A worker process holding one ``SumoGrid``: answers ``("reset", seed)``, ``("step", (phases, arrivals))``.
    It ignores SIGINT / SIGTERM, like ``SubprocVecEnv``'s workers: the main process finishes its round first."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    grid = None
    try:
        grid = SumoGrid(layout)
        conn.send(("ok", None))
        while True:
            cmd, data = conn.recv()
            if cmd == "close":
                break
            try:
                conn.send(("ok", grid.reset(data) if cmd == "reset" else grid.step(*data)))
            except Exception as e:  # noqa: BLE001 - reported to the env in the main process
                conn.send(("error", f"{type(e).__name__}: {e}"))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        if grid is not None:
            grid.close()


class _Remote:
    """A ``SumoGrid`` in a spawned worker process, with the same ``reset`` / ``step`` (split into send and get,
    so that a batch's workers step in parallel)."""

    def __init__(self, layout: GridLayout) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, layout), daemon=True)
        self.proc.start()
        child.close()

    def send(self, cmd: str, data: Any) -> None:
        self.conn.send((cmd, data))

    def get(self) -> Any:
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"SUMO worker failed: {value}")
        return value

    def close(self) -> None:
        try:
            self.conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


class SumoRegion(TrafficRegion):
    """The region's sizes and reset observation (the surrogate's layout); there is no SUMO local simulator, so
    ``step`` raises (see the module docstring), and the DIALS runner refuses it before any work."""

    has_local_simulator = False

    def step(self, x: LocalState, a: np.ndarray, u: np.ndarray, noise: np.ndarray
             ) -> tuple[LocalState, np.ndarray, np.ndarray]:
        raise ConfigError(NO_LOCAL)


class DialsTrafficSumoEnv(LocalFormEnv):
    """A batch of ``num_envs`` √N×√N SUMO traffic grids (a GS); team reward = mean of the agents' rewards."""

    def __init__(self, num_envs: int = 1, seed: Seed = None, n_agents: int = 4, inflow_prob: float = 0.1,
                 episode_limit: int = 300, spillback_influence: bool = True) -> None:
        _, sumo_home = import_sumo()
        super().__init__(num_envs, seed)
        side = setup_grid(self, n_agents, inflow_prob, episode_limit, spillback_influence)
        self.workdir = tempfile.mkdtemp(prefix="concord_sumo_")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.workdir, True)
        self.layout = build_grid(side, self.workdir, sumo_home)
        self.n_entries = len(self.layout.entry_routes)
        self.in_process = self.num_envs == 1 and not _OWNER
        self.sims: list[Any] = [SumoGrid(self.layout)] if self.in_process else \
            [_Remote(self.layout) for _ in range(self.num_envs)]
        if not self.in_process:
            for r in self.sims:
                r.get()
        E, N = self.num_envs, self.n_agents
        self.axis = np.full((E, N), NS, np.int64)
        self.yellow = np.zeros((E, N), bool)
        self.timer = np.zeros((E, N), np.int64)
        self.occ = np.zeros((E, N, N_LANES, CELLS), bool)
        self.collisions = np.zeros(E, np.int64)
        log.info("dials_traffic on SUMO: %d env(s) %s, net in %s", E,
                 "in this process" if self.in_process else "in worker processes", self.workdir)

    @classmethod
    def local_model(cls, n_agents: int = 4, inflow_prob: float = 0.1, episode_limit: int = 300,
                    spillback_influence: bool = True) -> SumoRegion:
        return SumoRegion(episode_limit, spillback_influence)

    @classmethod
    def check_available(cls, env_args: dict[str, Any]) -> None:
        import_sumo()

    def get_env_info(self) -> dict[str, Any]:
        return {**super().get_env_info(), "state_is_obs_concat": True}

    def local_states(self, env_ids: Any) -> LocalState:
        """The lane occupancy and lights of every region (SUMO's continuous state is not exposed)."""
        return {"occ": self.occ[env_ids].copy(), "axis": self.axis[env_ids].copy(),
                "yellow": self.yellow[env_ids].copy(), "timer": self.timer[env_ids].copy()}

    # ----------------------------------------------------------------- interface
    def _call(self, ids: np.ndarray, cmd: str, data: Sequence[Any]) -> list[Any]:
        if not len(ids):
            return []
        if self.in_process:
            grid = self.sims[0]
            return [grid.reset(data[0]) if cmd == "reset" else grid.step(*data[0])]
        for e, d in zip(ids, data):
            self.sims[e].send(cmd, d)
        return [self.sims[e].get() for e in ids]

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.int64)
        seeds = (self.rngs.uniform(ids, 1)[:, 0] * 2**31).astype(np.int64)  # (k,) SUMO's --seed per episode
        occ = self._call(ids, "reset", list(seeds))
        self.occ[ids] = np.stack(occ) if len(ids) else self.occ[ids]
        self.axis[ids], self.yellow[ids], self.timer[ids] = NS, False, 0
        self.t[ids] = 0
        self.collisions[ids] = 0
        k, N = len(ids), self.n_agents
        return self._env_obs(ids, np.zeros((k, N, self.local.n_sources), np.float32), np.zeros((k, N), np.float32))

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.int64)
        k, N = len(ids), self.n_agents
        act = np.asarray(actions, dtype=np.int64).reshape(k, N)
        axis, yellow, timer = light_update(self.axis[ids], self.yellow[ids], self.timer[ids], act)  # (k, N)
        self.axis[ids], self.yellow[ids], self.timer[ids] = axis, yellow, timer
        arrivals = self.rngs.uniform(ids, self.n_entries) < self.inflow_prob  # (k, 4√N)
        before = self.occ[ids]  # (k, N, 4, 10) at the start of the step
        out = self._call(ids, "step", [(phase_index(axis[j], yellow[j]), arrivals[j]) for j in range(k)])
        reward = np.zeros((k, N), np.float32)
        entered = np.zeros((k, N, N_LANES), bool)
        for j, (occ, r, ent, coll) in enumerate(out):
            self.occ[ids[j]], reward[j], entered[j] = occ, r, ent
            self.collisions[ids[j]] += coll
        u = [entered]
        if self.local.spillback:
            lane = np.arange(N_LANES)
            down = self.layout.downstream  # (N, 4)
            u.append((down >= 0) & before[:, np.maximum(down, 0), lane, CELLS - 1])  # (k, N, 4)
        influence = np.concatenate(u, -1).astype(np.float32)
        return self._time_limit_result(
            ids, self._env_obs(ids, influence, reward), reward.mean(1) if k else reward.sum(1),
            lambda e: {"surrogate_traffic_model": 0, "sumo_collisions": int(self.collisions[e]),
                       "episode_limit": True})

    def _env_obs(self, ids: np.ndarray, u: np.ndarray, reward: np.ndarray) -> EnvObs:
        k, N = len(ids), self.n_agents
        flat = {"occ": self.occ[ids].reshape(k * N, N_LANES, CELLS), "axis": self.axis[ids].reshape(-1),
                "yellow": self.yellow[ids].reshape(-1)}
        obs = self.local.observe(flat).reshape(k, N, self.obs_shape)
        return EnvObs(obs=obs, state=obs.reshape(k, self.state_shape), avail_actions=np.ones((k, N, 2), bool),
                      extras={"influence": u, "agent_reward": reward.astype(np.float32)})

    def close(self) -> None:
        for sim in self.sims:
            sim.close()
        self.sims = []
        self._cleanup()
