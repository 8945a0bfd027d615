"""The DIALS runner (Suau et al. 2022): the global simulator (GS) for test episodes and AIP datasets, and the
execution backend of the agents' influence-augmented local simulators, where their training experience comes from.

``runner=dials`` selects DIALS; its schedule (retrain the AIPs every F steps, train every agent in its own IALS,
test on the GS) is the ``dials`` trainer (``concord.trainers.dials``), which the runner requires. As a ``Runner``
it runs rounds of GS episodes like the episode runner (``run``), calling ``before_rollout`` first (the trainer
uses it to load the agents' latest weights into the joint controller) and timing test rounds. It owns the worker
backend (``start_workers``: ``dials_backend`` processes | ray | inline, ``dials_workers`` groups, ``ray_address``),
closed with the runner.
"""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Callable, Mapping

import numpy as np

from concord.components.episode_buffer import EpisodeBatch, Scheme
from concord.dials.backends import Backend, make_backend
from concord.envs.local_form import LocalFormEnv
from concord.errors import ConfigError
from concord.registry import register_runner
from concord.runners.runner import EpisodeStats, Runner


def agent_groups(n_agents: int, workers: int) -> list[list[int]]:
    """``workers`` contiguous groups of agents, one worker each (0: one worker per agent, App. E.2)."""
    w = workers or n_agents
    return [list(map(int, g)) for g in np.array_split(np.arange(n_agents), min(w, n_agents))]


@register_runner("dials")
class DialsRunner(Runner):
    subprocess = False

    def __init__(self, args: SimpleNamespace, seed: int) -> None:
        super().__init__(args, seed)  # trainer=dials is required by config/runners/dials.yaml
        if not isinstance(self.vec_env, LocalFormEnv):
            raise ConfigError(f"runner=dials needs a local-form env (dials_traffic, dials_warehouse), got env={args.env}")
        if args.dials_mode != "gs" and not self.vec_env.local.has_local_simulator:
            raise ConfigError(f"{args.env}: this model has no local simulator, so dials_mode={args.dials_mode} "
                              f"cannot run; use dials_mode=gs (the GS baseline)")
        self.before_rollout: Callable[[], None] | None = None
        self.eval_seconds = 0.0
        self.backend: Backend | None = None

    def groups(self) -> list[list[int]]:
        """The agents of each worker (``agent_groups`` of ``dials_workers``)."""
        return agent_groups(self.env_info["n_agents"], self.args.dials_workers)

    def start_workers(self, config: Mapping[str, Any]) -> Backend:
        self.backend = make_backend(self.args.dials_backend, config, self.groups(), self.args.ray_address)
        return self.backend

    def run(self, mac: Any, scheme: Scheme, t_env: int, test_mode: bool = False) -> tuple[EpisodeBatch, EpisodeStats]:
        if self.before_rollout is not None:
            self.before_rollout()
        t0 = time.perf_counter()
        out = super().run(mac, scheme, t_env, test_mode)
        if test_mode:
            self.eval_seconds += time.perf_counter() - t0
        return out

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        super().close()
