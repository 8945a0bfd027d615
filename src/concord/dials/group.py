"""The agents of one DIALS worker (Suau et al. 2022, App. E.2: one simulator per agent or per group of agents).

For each of its agents a worker holds the agent's IALS (``IALSVecEnv``), its AIP and fitter, and its own
1-agent controller and learner (the configured ``learner``, ``ppo`` for ``--config=dials``): independent learners
with non-shared parameters, each trained on its own reward. Every agent has its own torch / numpy / python random
state, swapped in around everything done for it, so that an agent's results depend on the run seed and its index
only, not on how agents are grouped into workers or which backend runs them (processes, Ray, in process).
Everything a worker returns is plain data (state dicts, arrays), sent back explicitly: the trained AIP weights and
the learners' states reach the main process at every retraining and checkpoint.
"""
from __future__ import annotations

import random
import resource
import sys
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from concord.components.episode_buffer import EpisodeBatch
from concord.config import to_namespace
from concord.dials.aip import AIP, AIPFitter, AIPPredictor
from concord.dials.ials import IALSVecEnv
from concord.envs.factory import env_kwargs
from concord.learners.base import mean_stats
from concord.registry import ENVS, LEARNERS, MACS, load_plugins
from concord.runners.runner import Runner


class IALSRunner(Runner):
    """The standard round loop (``Runner.run``) over one agent's IALS instead of a configured env."""

    def __init__(self, args: SimpleNamespace, vec_env: IALSVecEnv) -> None:
        self.args, self.vec_env = args, vec_env
        self.env_info = vec_env.get_env_info()
        self.n_envs, self.episode_limit = vec_env.num_envs, int(self.env_info["episode_limit"])


def agent_seed(seed: int, agent: int) -> int:
    """The seed of agent ``agent``'s networks and sampling (its own random state)."""
    return int(np.random.SeedSequence(int(seed) % 2**64, spawn_key=(4, int(agent))).generate_state(1)[0])


def single_agent_net(mac: Any) -> torch.nn.Module:
    """The network of a 1-agent controller (unwrapping ``agent_shared: false``'s one-element wrapper)."""
    return mac.agent.agents[0] if hasattr(mac.agent, "agents") else mac.agent


class _Agent:
    def __init__(self, args: SimpleNamespace, local: Any, agent: int) -> None:
        info = {"n_agents": 1, "n_actions": local.n_actions, "obs_shape": local.obs_shape,
                "state_shape": local.obs_shape, "episode_limit": local.episode_limit, "extras": {},
                "state_is_obs_concat": True}
        s = agent_seed(args.seed, agent)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)
        self.aip = AIP(local.dset_shape, local.n_sources, local.n_classes, args.aip_arch, args.aip_hidden)
        self.fitter = AIPFitter(self.aip, args.aip_lr, args.aip_batch_size, args.aip_epochs)
        self.ials = IALSVecEnv(local, AIPPredictor(self.aip, args.batch_size_run), args.batch_size_run, args.seed,
                               agent)
        cpu = torch.device("cpu")
        self.mac = MACS.get(args.mac)(info, args, cpu)
        self.learner = LEARNERS.get(args.learner)(self.mac, info, args, cpu)
        self.runner = IALSRunner(args, self.ials)
        self.rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())


@contextmanager
def _own_rng(agent: _Agent) -> Iterator[None]:
    outer = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    torch.set_rng_state(agent.rng[0])
    np.random.set_state(agent.rng[1])
    random.setstate(agent.rng[2])
    try:
        yield
    finally:
        agent.rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        torch.set_rng_state(outer[0])
        np.random.set_state(outer[1])
        random.setstate(outer[2])


class AgentGroup:
    """The agents ``agent_ids`` of a run configured by ``config`` (the run's merged config dict)."""

    def __init__(self, config: Mapping[str, Any], agent_ids: list[int]) -> None:
        args = to_namespace(dict(config))
        load_plugins(args.plugins)
        torch.set_num_threads(args.torch_threads)
        local = ENVS.get(args.env).local_model(**env_kwargs(args.env_args))
        self.agents = {int(i): _Agent(args, local, int(i)) for i in agent_ids}

    def train(self, rounds: int, t_env: int) -> dict[int, dict[str, Any]]:
        """``rounds`` rounds of IALS episodes per agent, each handed to the agent's learner."""
        out = {}
        for i, ag in self.agents.items():
            steps, returns, lengths, stats = 0, [], [], []
            with _own_rng(ag):
                for _ in range(rounds):
                    batch, ep = ag.runner.run(ag.mac, ag.learner.scheme, t_env + steps)
                    steps += int(batch.episode_lengths().sum())
                    returns += ep.returns
                    lengths += ep.lengths
                    s = ag.learner.update(batch, t_env + steps, 0)
                    if s:
                        stats.append(s)
            out[i] = {"steps": steps, "returns": returns, "lengths": lengths, "stats": mean_stats(stats),
                      "peak_rss_mb": peak_rss_mb()}
        return out

    def learn(self, data: Mapping[int, Mapping[str, np.ndarray]], t_env: int, episode: int) -> dict[int, Any]:
        """Hand each agent its own slice of a GS round (the ``gs`` baseline)."""
        out = {}
        for i, arrays in data.items():
            ag = self.agents[i]
            sch = ag.learner.scheme
            n, t = arrays["filled"].shape
            batch = EpisodeBatch(sch, n, t, {k: np.ascontiguousarray(arrays[k], dtype=sch[k].dtype) for k in sch})
            with _own_rng(ag):
                out[i] = {"stats": ag.learner.update(batch, t_env, episode), "peak_rss_mb": peak_rss_mb()}
        return out

    def fit_aips(self, data: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[int, dict[str, Any]]:
        """Retrain (fine-tune) each agent's AIP on its GS dataset; return the statistics and the new weights."""
        out = {}
        for i, (d, u, mask) in data.items():
            ag = self.agents[i]
            with _own_rng(ag):
                stats = ag.fitter.fit(d, u, mask)
            out[i] = {"stats": stats, "aip": _copy(ag.fitter.state_dict())}
        return out

    def simulator_aip_weights(self) -> dict[int, dict[str, torch.Tensor]]:
        """The AIP weights each agent's IALS samples its influence sources from (read from the simulator)."""
        return {i: _copy(ag.ials.predictor.aip.state_dict()) for i, ag in self.agents.items()}

    def actor_states(self) -> dict[int, dict[str, torch.Tensor]]:
        return {i: _copy(single_agent_net(ag.mac).state_dict()) for i, ag in self.agents.items()}

    def state(self) -> dict[int, dict[str, Any]]:
        """Everything an exact resume needs: learner, AIP and optimiser, the IALS and agent random states."""
        return {i: _copy({"learner": ag.learner.state_dict(), "aip": ag.fitter.state_dict(),
                          "ials_rng": ag.ials.get_rng_state(), "rng": ag.rng})
                for i, ag in self.agents.items()}

    def load(self, states: Mapping[int, Mapping[str, Any]]) -> None:
        for i, s in states.items():
            ag = self.agents[i]
            ag.learner.load_state_dict(s["learner"])
            ag.fitter.load_state_dict(s["aip"])
            ag.ials.set_rng_state(s["ials_rng"])
            ag.rng = s["rng"]

    def ping(self) -> int:
        return len(self.agents)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (``ru_maxrss`` is KB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (2**20 if sys.platform == "darwin" else 2**10)


def _copy(x: Any) -> Any:
    """A deep copy with no tensor shared with the live networks (what a pipe or Ray would deliver)."""
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(v) for v in x)
    if torch.is_tensor(x):
        return x.detach().clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    return x
