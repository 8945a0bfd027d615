"""Collecting episodes: the episode runner and the parallel runner are one loop over a ``VecEnv``.

Each round runs ``batch_size_run`` episodes, one per env, side by side. Only envs that are still running are
stepped and passed through the network; an episode ends on termination, on the env's own time limit, or at
``episode_limit`` (both stored as not terminal). If an env's worker crashes, its partial episode is discarded,
its slot starts a new episode, and the failure is counted; past ``max_env_failures`` the run stops.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

from concord.components.episode_buffer import EpisodeBatch, Scheme
from concord.envs.base import EnvObs, StepResult, VecEnv
from concord.envs.factory import make_vec_env
from concord.errors import EnvWorkerError
from concord.registry import register_runner

log = logging.getLogger(__name__)


@dataclass
class EpisodeStats:
    """Per-episode outcomes of one round: returns, lengths and the numeric entries of the final infos."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    infos: list[dict[str, float]] = field(default_factory=list)

    def extend(self, other: "EpisodeStats") -> None:
        self.returns += other.returns
        self.lengths += other.lengths
        self.infos += other.infos

    def clear(self) -> None:
        self.returns, self.lengths, self.infos = [], [], []

    def summary(self, prefix: str) -> dict[str, float]:
        """``{prefix}return_mean``, ``{prefix}ep_length_mean`` and ``{prefix}<info>_mean`` for every numeric info."""
        out = {f"{prefix}return_mean": float(np.mean(self.returns)), f"{prefix}return_std": float(np.std(self.returns)),
               f"{prefix}ep_length_mean": float(np.mean(self.lengths))}
        keys = sorted({k for info in self.infos for k in info})
        for k in keys:
            out[f"{prefix}{k}_mean"] = float(np.mean([info.get(k, 0.0) for info in self.infos]))
        return out


def _numeric(info: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in info.items()
            if k != "episode_limit" and isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_))}


class Runner:
    """Runs rounds of ``batch_size_run`` episodes with a controller on a ``VecEnv``."""

    subprocess = False

    def __init__(self, args: SimpleNamespace, seed: int) -> None:
        self.args = args
        self.vec_env: VecEnv = make_vec_env(args.env, args.env_args, args.batch_size_run, seed, self.subprocess,
                                            tuple(args.plugins), args.env_step_timeout, args.max_env_failures)
        self.env_info = self.vec_env.get_env_info()
        self.n_envs = self.vec_env.num_envs
        self.episode_limit = int(self.env_info["episode_limit"])

    @property
    def env_failures(self) -> int:
        return self.vec_env.failures

    def _check_failures(self) -> None:
        if self.vec_env.failures > self.args.max_env_failures:
            raise EnvWorkerError(f"env workers failed {self.vec_env.failures} times (max_env_failures="
                                 f"{self.args.max_env_failures}); stopping")

    def close(self) -> None:
        self.vec_env.close()

    def _write_obs(self, batch: EpisodeBatch, ids: np.ndarray, t: np.ndarray, o: EnvObs) -> None:
        d = batch.data
        d["obs"][ids, t] = o.obs
        d["avail_actions"][ids, t] = o.avail_actions
        if "state" in d:
            d["state"][ids, t] = o.state
        for k, v in o.extras.items():
            d[f"extra_{k}"][ids, t] = v

    def run(self, mac: Any, scheme: Scheme, t_env: int, test_mode: bool = False) -> tuple[EpisodeBatch, EpisodeStats]:
        """One round: ``n_envs`` complete episodes in a fresh batch, and their statistics."""
        n = self.n_envs
        batch = EpisodeBatch(scheme, n, self.episode_limit + 1)
        d = batch.data
        mac.init_hidden(n)
        all_ids = np.arange(n)
        cur = self.vec_env.reset(all_ids)
        self._check_failures()
        t = np.zeros(n, dtype=np.int64)
        self._write_obs(batch, all_ids, t, cur)
        last_actions = np.full((n, self.env_info["n_agents"]), -1, dtype=np.int64)
        ep_return = np.zeros(n, dtype=np.float64)
        running = np.ones(n, dtype=bool)
        stats = EpisodeStats()
        final: dict[int, tuple[float, int, dict[str, float]]] = {}

        while running.any():
            ids = np.flatnonzero(running)
            actions, outputs = mac.select_actions(_rows(cur, ids), last_actions[ids], ids, t_env,
                                                  test_mode)  # (k, n_agents), {field: (k, ...)}
            res = self.vec_env.step(ids, actions)
            self._check_failures()
            if res.failed is not None and res.failed.any():
                self._discard(batch, ids[res.failed], t, ep_return, last_actions, mac, res, cur)
                keep = ~res.failed
                ids, actions = ids[keep], actions[keep]
                outputs = {k: v[keep] for k, v in outputs.items()}
                res = _select(res, keep)
                if len(ids) == 0:
                    continue
            tt = t[ids]
            d["actions"][ids, tt] = actions
            d["reward"][ids, tt] = res.reward
            d["terminated"][ids, tt] = res.terminated
            d["filled"][ids, tt] = True
            for k, v in outputs.items():
                d[k][ids, tt] = v
            ep_return[ids] += res.reward
            last_actions[ids] = actions
            t[ids] += 1
            self._write_obs(batch, ids, t[ids], res.obs)
            _assign(cur, ids, res.obs)
            done = res.terminated | res.truncated | (t[ids] >= self.episode_limit)
            for j in np.flatnonzero(done):
                i = int(ids[j])
                running[i] = False
                final[i] = (float(ep_return[i]), int(t[i]), _numeric(res.infos[j]))
        for i in range(n):
            r, length, info = final[i]
            stats.returns.append(r)
            stats.lengths.append(length)
            stats.infos.append(info)
        return batch, stats

    def _discard(self, batch: EpisodeBatch, failed_ids: np.ndarray, t: np.ndarray, ep_return: np.ndarray,
                 last_actions: np.ndarray, mac: Any, res: StepResult, cur: EnvObs) -> None:
        """Drop the partial episodes of crashed envs; their slots restart from the fresh observation."""
        for k in batch.data:
            batch.data[k][failed_ids] = 0
        t[failed_ids] = 0
        ep_return[failed_ids] = 0.0
        last_actions[failed_ids] = -1
        mac.reset_hidden(failed_ids)
        fresh = _select(res, res.failed).obs
        self._write_obs(batch, failed_ids, t[failed_ids], fresh)
        _assign(cur, failed_ids, fresh)


def _rows(cur: EnvObs, ids: np.ndarray) -> EnvObs:
    """The running envs' rows of the current observations (what a controller sees)."""
    if len(ids) == len(cur.obs):
        return cur
    return EnvObs(cur.obs[ids], cur.state[ids], cur.avail_actions[ids], {k: v[ids] for k, v in cur.extras.items()})


def _assign(cur: EnvObs, ids: np.ndarray, o: EnvObs) -> None:
    cur.obs[ids] = o.obs
    cur.state[ids] = o.state
    cur.avail_actions[ids] = o.avail_actions
    for k, v in o.extras.items():
        cur.extras[k][ids] = v


def _select(res: StepResult, keep: np.ndarray) -> StepResult:
    o = res.obs
    return StepResult(
        obs=EnvObs(o.obs[keep], o.state[keep], o.avail_actions[keep], {k: v[keep] for k, v in o.extras.items()}),
        reward=res.reward[keep], terminated=res.terminated[keep], truncated=res.truncated[keep],
        infos=[info for info, k in zip(res.infos, keep) if k], failed=res.failed[keep])


@register_runner("episode")
class EpisodeRunner(Runner):
    """``batch_size_run`` envs (usually 1) stepped in this process."""

    subprocess = False


@register_runner("parallel")
class ParallelRunner(Runner):
    """``batch_size_run`` envs in worker processes, or one natively batched env stepped in process."""

    subprocess = True
