"""Local-form environments (DIALS, Suau et al. 2022, App. A and C): a global simulator (GS) that is the composition
of identical local regions, one per learning agent, coupled only through influence sources.

A domain exposes its region dynamics as a ``LocalModel`` (numpy, vectorised over a leading batch of regions):
local state x_i (a dict of arrays), ``step(x_i, a_i, u_i, noise_i)`` -> x_i', r_i, o_i, the d-set ``dset(o_i)`` an
approximate influence predictor (AIP) conditions on, and the shape of u_i: ``n_sources`` categorical variables of
``n_classes`` classes each (eq. 25: the sources are modelled as independent given the d-set). ``noise`` is the
region's own uniforms for one step (item spawns in the warehouse); the GS draws them once per *global* random
variable, so that regions sharing a variable see the same number.

The GS (a ``LocalFormEnv``, an ordinary ``NumpyVecEnv``) computes every region's u_i from the global state and
calls the same ``LocalModel.step`` for all regions at once; an influence-augmented local simulator (IALS,
``concord.dials.ials``) calls it for one region with u_i drawn from an AIP (Algorithm 3). GS and IALS therefore
differ only in where u_i comes from. The GS reports, per step, as extras of the observation after the step:
``influence`` ``(n_agents, n_sources)`` (the u_i of the step just taken, as class indices) and ``agent_reward``
``(n_agents,)`` (the individual rewards; the team reward is their mean, the papers' evaluation metric, App. D.1).
So (d-set of obs t, influence stored at t + 1) are the AIP's training pairs (Algorithm 2).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from concord.envs.numpy_vec import NumpyVecEnv

LocalState = dict[str, np.ndarray]  # name -> (n, ...) for a batch of n regions


class LocalModel(ABC):
    """The dynamics of one local region, vectorised over a leading batch of regions (all regions are identical,
    App. F)."""

    obs_shape: int
    n_actions: int
    episode_limit: int
    n_sources: int  # M: influence sources u_i = (u^1 .. u^M)
    n_classes: int  # C: classes per source
    dset_shape: int  # the d-set's width
    has_local_simulator: bool = True  # False: ``step`` is unavailable (a GS-only model: DIALS needs dials_mode=gs)
    noise_size: int  # uniforms a region draws per step (0: none)
    reset_noise_size: int  # uniforms a region draws at reset
    recurrent_dset: bool  # the d-set is the history of ``dset(o)`` (a GRU AIP), not the current step only

    @abstractmethod
    def reset(self, noise: np.ndarray) -> LocalState:
        """Initial local states of ``len(noise)`` regions from ``noise (n, reset_noise_size)``."""

    @abstractmethod
    def step(self, x: LocalState, a: np.ndarray, u: np.ndarray, noise: np.ndarray
             ) -> tuple[LocalState, np.ndarray, np.ndarray]:
        """One step of ``n`` regions: actions ``(n,)``, influence classes ``(n, n_sources)``, uniforms
        ``(n, noise_size)`` -> next local states, rewards ``(n,)`` float32, observations ``(n, obs_shape)`` float32."""

    @abstractmethod
    def observe(self, x: LocalState) -> np.ndarray:
        """``(n, obs_shape)`` float32."""

    def dset(self, obs: np.ndarray) -> np.ndarray:
        """The AIP's input at one step, ``(..., dset_shape)``, from observations ``(..., obs_shape)``."""
        return obs[..., : self.dset_shape]


def take(x: LocalState, idx: Any) -> LocalState:
    """Rows ``idx`` of every array of a batch of local states."""
    return {k: v[idx] for k, v in x.items()}


class LocalFormEnv(NumpyVecEnv):
    """A GS built from a ``LocalModel``: ``n_agents`` learning regions, each an agent; see the module docstring."""

    local: LocalModel

    @classmethod
    @abstractmethod
    def local_model(cls, **env_args: Any) -> LocalModel:
        """The region dynamics for these constructor arguments (no GS is built: IALS workers call this)."""

    @abstractmethod
    def local_states(self, env_ids: Any) -> LocalState:
        """The learning regions' current local states, ``(k, n_agents, ...)`` per array."""

    def local_info(self) -> dict[str, Any]:
        """The sizes a DIALS worker builds each agent's IALS, AIP and 1-agent controller from."""
        m = self.local
        return {"n_agents": 1, "n_actions": m.n_actions, "obs_shape": m.obs_shape, "state_shape": m.obs_shape,
                "episode_limit": m.episode_limit, "extras": {}}
