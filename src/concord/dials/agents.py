"""The main process's handle on every DIALS agent: a ``Learner`` whose state lives in the workers.

The ``dials`` trainer installs it as the experiment's learner, so the experiment's checkpoints hold, through
``state_dict``, every agent's learner (networks, optimisers, rollout storage), every AIP with its optimiser, the
agents' and simulators' random states, and the schedule position (the step of the last AIP retraining) -- all
fetched from the workers when a checkpoint is written, and sent back to them by ``load_state_dict`` on resume.
``update`` takes a GS round (the ``gs`` baseline) and hands each agent its own slice, with its own reward.
``sync_actors`` loads the agents' latest actor weights into the experiment's joint controller (one actor per
agent, ``agent_shared: false``) before any GS rollout.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from concord.components.episode_buffer import EpisodeBatch
from concord.learners.base import Learner
from concord.runners.runner import EpisodeStats

if TYPE_CHECKING:
    from concord.run import Experiment


class DialsAgents(Learner):
    def __init__(self, exp: "Experiment") -> None:
        super().__init__(exp.mac, exp.env_info, exp.args, exp.device)
        self.exp = exp
        self.runner = exp.runner
        self.local = exp.runner.vec_env.local
        self.groups = exp.runner.groups()
        self.backend = exp.runner.start_workers(exp.config)
        self.last_aip_t: int | None = None  # the schedule position: t_env of the last AIP retraining
        self.aip_fits = 0
        self.aip_states: dict[int, Any] = {}  # the AIP weights the workers sent back at the last retraining
        self.seconds = {"collect": 0.0, "aip": 0.0, "agents": 0.0}
        self._stale = True  # the joint controller does not hold the agents' latest actors

    # --- the phases -------------------------------------------------------------------------------
    def _call(self, method: str, per_agent: Mapping[int, Any] | None = None, *args: Any) -> dict[int, Any]:
        """``AgentGroup.method`` on every worker (with each group's slice of ``per_agent`` first); merged by agent."""
        calls = [((({i: per_agent[i] for i in g},) if per_agent is not None else ()) + args) for g in self.groups]
        out: dict[int, Any] = {}
        for r in self.backend.call(method, calls):
            out.update(r or {})
        return out

    def train_local(self, rounds: int, t_env: int) -> tuple[int, EpisodeStats, dict[str, float], list[float]]:
        """Every agent runs ``rounds`` rounds in its IALS and updates; (steps, mean-over-agents episodes, stats, rss)."""
        t0 = time.perf_counter()
        res = self._call("train", None, rounds, t_env)
        self.seconds["agents"] += time.perf_counter() - t0
        self._stale = True
        steps = {r["steps"] for r in res.values()}
        assert len(steps) == 1, f"agents took different numbers of steps: {steps}"
        agents = sorted(res)
        ep = EpisodeStats(returns=list(np.mean([res[i]["returns"] for i in agents], 0)),
                          lengths=list(res[agents[0]]["lengths"]), infos=[{} for _ in res[agents[0]]["lengths"]])
        stats = [res[i]["stats"] for i in agents if res[i]["stats"]]
        merged = {k: float(np.mean([s[k] for s in stats if k in s])) for k in {k for s in stats for k in s}}
        if stats:
            self.n_updates += len(stats)
        return steps.pop(), ep, merged, [res[i]["peak_rss_mb"] for i in agents]

    def retrain_aips(self, t_env: int) -> dict[str, float]:
        """Algorithm 2: whole GS episodes under the current joint policy, then every AIP fine-tuned on its pairs
        (d-set of obs t, u of step t stored at t + 1)."""
        exp, a = self.exp, self.args
        t0 = time.perf_counter()
        n_rounds = math.ceil(math.ceil(a.aip_dataset_size / self.local.episode_limit) / self.runner.n_envs)
        batches = [self.runner.run(exp.mac, exp.scheme, t_env)[0] for _ in range(n_rounds)]
        obs = np.concatenate([b["obs"] for b in batches]).astype(np.float32)  # (B, T+1, N, obs)
        d = self.local.dset(obs[:, :-1])  # (B, T, N, D)
        u = np.concatenate([b["extra_influence"] for b in batches])[:, 1:].astype(np.int64)  # (B, T, N, M)
        mask = np.concatenate([b["filled"] for b in batches])[:, :-1].astype(np.float32)  # (B, T)
        t1 = time.perf_counter()
        res = self._call("fit_aips", {i: (d[:, :, i], u[:, :, i], mask) for i in range(self.n_agents)})
        self.seconds["collect"] += t1 - t0
        self.seconds["aip"] += time.perf_counter() - t1
        self.aip_states = {i: r["aip"] for i, r in res.items()}
        self.last_aip_t, self.aip_fits = t_env, self.aip_fits + 1
        return {f"aip_{k}": float(np.mean([r["stats"][k] for r in res.values()])) for k in ("ce_fresh", "ce_test",
                                                                                            "ce_train")}

    def sync_actors(self) -> None:
        if not self._stale:
            return
        states = self._call("actor_states")
        for i, s in states.items():
            self.mac.agent.agents[i].load_state_dict(s)
        self._stale = False

    # --- the Learner contract ------------------------------------------------------------------------
    def update(self, batch: EpisodeBatch, t_env: int, episode: int) -> dict[str, float]:
        """The ``gs`` baseline: agent i learns from its own columns of a GS round, rewarded by its own reward
        (``agent_reward`` of step t is stored with the observation at t + 1)."""
        t0 = time.perf_counter()
        d = batch.data
        reward = np.zeros_like(d["extra_agent_reward"])  # (B, T, N)
        reward[:, :-1] = d["extra_agent_reward"][:, 1:]
        per_agent = {}
        for i in range(self.n_agents):
            per_agent[i] = {"obs": d["obs"][:, :, i : i + 1], "avail_actions": d["avail_actions"][:, :, i : i + 1],
                            "actions": d["actions"][:, :, i : i + 1], "log_prob": d["log_prob"][:, :, i : i + 1],
                            "reward": reward[:, :, i], "terminated": d["terminated"], "filled": d["filled"]}
        res = self._call("learn", per_agent, t_env, episode)
        self.seconds["agents"] += time.perf_counter() - t0
        self._stale = True
        stats = [r["stats"] for r in res.values() if r["stats"]]
        self.n_updates += len(stats)
        return {k: float(np.mean([s[k] for s in stats])) for k in (stats[0] if stats else {})}

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"agents": self.mac.agent}

    def simulator_aip_weights(self) -> dict[int, dict[str, torch.Tensor]]:
        """The weights every IALS currently samples from, read back from the workers."""
        return self._call("simulator_aip_weights")

    def state_dict(self) -> dict[str, Any]:
        return {"agents": self._call("state"), "last_aip_t": self.last_aip_t, "aip_fits": self.aip_fits,
                "n_updates": self.n_updates, "seconds": dict(self.seconds)}

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self._call("load", s["agents"])
        self.aip_states = {i: st["aip"] for i, st in s["agents"].items()}
        self.last_aip_t, self.aip_fits, self.n_updates = s["last_aip_t"], s["aip_fits"], s["n_updates"]
        self.seconds = dict(s["seconds"])
        self._stale = True
