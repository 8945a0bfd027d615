"""Prescription sets of DADC's virtual coordinator (dadc.md §3 "Prescriptions", §5 "Parameterized prescriptions").

A prescription h = (h^k)_k maps each agent's *local* information L^k to a distribution over its actions; the
coordinator picks it from *common* information only. A set fixes (i) which features of an observation are common
(Z_t, identical in every agent's row), (ii) the coordinator's action: one of ``n_options`` prescriptions
(discrete) or a real parameter vector θ (continuous), and (iii) how agent k applies θ to its local information.
θ (``n_params`` wide) is what the AIS encoder receives as θ_{t-1} (§5): the option's one-hot for a discrete set.

- ``mabc3`` (App. E.1, the paper's actor): {agent 1 may transmit, agent 2 may, both may}; an agent that may
  transmit does so iff its buffer holds a packet (its local information B^k). It cannot say "nobody transmits".
- ``mabc4``: the same plus "nobody may transmit" — every deterministic prescription of MABC (with an empty
  buffer only "no transmit" is possible, so h^k is fixed by one bit per agent).
- ``mean_field`` (App. D.2/E.2): θ ∈ R^6 are logits of h(a | s) = softmax(θ.view(2, 3)[s]) for the device state
  s = S^k ∈ {0, 1}; common information is the mean field m_t = M_t(ON).
- ``constant``: any env; θ ∈ R^{n_agents·n_actions} are logits of h^k(a) = softmax(θ[k]) (local information
  ignored except the action mask); no common features. It serves envs without a domain-specific set.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from concord.errors import ConfigError

MABC_OPTIONS: dict[str, tuple[tuple[int, int], ...]] = {
    "mabc3": ((1, 0), (0, 1), (1, 1)),
    "mabc4": ((1, 0), (0, 1), (1, 1), (0, 0)),
}
AUTO = {"mabc": "mabc3", "demand_response": "mean_field"}


class PrescriptionSet:
    """Base: ``common_dim``, ``n_params``, ``discrete`` and ``n_options`` (discrete sets only)."""

    common_dim: int
    n_params: int
    discrete: bool
    n_options: int = 0

    def common(self, obs: torch.Tensor) -> torch.Tensor:
        """Common features Z_t from agent 0's row: obs (..., n_agents, obs_dim) -> (..., common_dim)."""
        raise NotImplementedError

    def params(self, choice: torch.Tensor) -> torch.Tensor:
        """θ of a sampled coordinator action: option indices (...,) int64 or a vector (..., n_params)."""
        if self.discrete:
            return torch.nn.functional.one_hot(choice, self.n_options).float()  # (..., n_options)
        return choice

    def local_log_probs(self, theta: torch.Tensor, local_obs: torch.Tensor, agent: int) -> torch.Tensor:
        """log h^k(a | ℓ^k) of agent ``agent``: θ (..., n_params), its obs row (..., obs_dim) -> (..., n_actions)."""
        raise NotImplementedError

    def log_probs(self, theta: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Every agent's prescription at its local information: (..., n_params), (..., n, obs_dim) -> (..., n, A)."""
        return torch.stack([self.local_log_probs(theta, obs[..., k, :], k) for k in range(obs.shape[-2])], dim=-2)


class MABCPrescriptions(PrescriptionSet):
    """Option o lets agent k transmit iff ``options[o][k]``; it then transmits iff its buffer is full."""

    discrete = True
    common_dim = 4  # [A1_{t-1}, A2_{t-1}, S_{t-1} = idle seen, S_{t-1} = busy seen]

    def __init__(self, options: tuple[tuple[int, int], ...]) -> None:
        self.options = torch.tensor(options, dtype=torch.float32)  # (n_options, 2)
        self.n_options = self.n_params = len(options)

    def common(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[..., 0, 1:5]

    def local_log_probs(self, theta: torch.Tensor, local_obs: torch.Tensor, agent: int) -> torch.Tensor:
        allowed = theta @ self.options[:, agent]  # (...,) 1 if the chosen option lets this agent transmit
        p_tx = allowed * local_obs[..., 0]  # (...,) transmit iff allowed and a packet is buffered
        return torch.log(torch.stack([1.0 - p_tx, p_tx], dim=-1))  # (..., 2), -inf on the impossible action


class MeanFieldPrescriptions(PrescriptionSet):
    """h(a | s) = softmax(θ.view(2, n_actions)[s]) for a device in local state s; Z_t = m_t."""

    discrete = False
    common_dim = 1

    def __init__(self, n_actions: int) -> None:
        self.n_actions = n_actions
        self.n_params = 2 * n_actions

    def common(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[..., 0, 1:2]

    def table(self, theta: torch.Tensor) -> torch.Tensor:
        """The prescription as a table π[s, a]: (..., n_params) -> (..., 2, n_actions) probabilities."""
        return torch.softmax(theta.view(*theta.shape[:-1], 2, self.n_actions), dim=-1)

    def local_log_probs(self, theta: torch.Tensor, local_obs: torch.Tensor, agent: int) -> torch.Tensor:
        logp = torch.log_softmax(theta.view(*theta.shape[:-1], 2, self.n_actions), dim=-1)  # (..., 2, A)
        s = local_obs[..., 0:1].long()  # (..., 1) the device's own state
        return torch.where(s.bool(), logp[..., 1, :], logp[..., 0, :])  # (..., A)

    def log_probs(self, theta: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Every device at once (the same values as ``local_log_probs`` per agent, without a loop over 100 agents):
        θ (..., n_params), obs (..., n, obs_dim) -> (..., n, A)."""
        logp = torch.log_softmax(theta.view(*theta.shape[:-1], 2, self.n_actions), dim=-1)  # (..., 2, A)
        s = obs[..., 0:1].long().bool()  # (..., n, 1)
        return torch.where(s, logp[..., None, 1, :], logp[..., None, 0, :])  # (..., n, A)


class ConstantPrescriptions(PrescriptionSet):
    """h^k(a) = softmax(θ[k]) whatever agent k observes (the passive agent still respects its action mask)."""

    discrete = False
    common_dim = 0

    def __init__(self, n_agents: int, n_actions: int) -> None:
        self.n_agents, self.n_actions = n_agents, n_actions
        self.n_params = n_agents * n_actions

    def common(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[..., 0, :0]

    def local_log_probs(self, theta: torch.Tensor, local_obs: torch.Tensor, agent: int) -> torch.Tensor:
        logits = theta.view(*theta.shape[:-1], self.n_agents, self.n_actions)[..., agent, :]
        return torch.log_softmax(logits, dim=-1)


def resolve_name(name: str, env: str) -> str:
    """``auto`` -> the domain's set (mabc3, mean_field) or ``constant`` for other envs."""
    return AUTO.get(env, "constant") if name == "auto" else name


def make_prescription_set(name: str, env: str, env_info: Mapping[str, Any]) -> PrescriptionSet:
    """The set ``name`` (after ``resolve_name``) for an env with ``env_info``; checks it fits the env."""
    name = resolve_name(name, env)
    n, a, o = env_info["n_agents"], env_info["n_actions"], env_info["obs_shape"]
    if name in MABC_OPTIONS:
        if (n, a, o) != (2, 2, 5):
            raise ConfigError(f"dadc_prescriptions={name} needs the mabc env (2 agents, 2 actions, obs 5)")
        return MABCPrescriptions(MABC_OPTIONS[name])
    if name == "mean_field":
        if o != 2:
            raise ConfigError("dadc_prescriptions=mean_field needs observations [own state, mean field]")
        return MeanFieldPrescriptions(a)
    if name == "constant":
        return ConstantPrescriptions(n, a)
    raise ConfigError(f"unknown dadc_prescriptions '{name}'")
