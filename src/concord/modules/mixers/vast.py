"""VAST (vast.md Algorithm 1): value factorisation over K = ⌈ηN⌉ variable agent sub-teams.

At every step an assignment strategy X (``vast_assignment.py``) puts each agent in one of K sub-teams, the
sub-team values are sums of their members' values (eq. 4; an empty sub-team is worth 0) and an inner registered
mixer Ψ (il, vdn, qmix or qtran in its values-only mode) mixes the K sub-team values (eq. 5). Any assignment keeps
the IGM of Ψ (Theorem 1). The metagrad policy is trained on-policy by REINFORCE (eq. 6) in ``rollout_update``
with its own Adam optimiser, never by the learner's optimiser (``td_parameters`` leaves it out).

Consistent assignments for online and target mixing: the Q-learner mixes steps 0..T-2 of a batch online and steps
1..T-1 with its target mixer (a deep copy; ``ctx.is_target``). Strategies fixed and spatial are deterministic
functions of the step. Random and metagrad draw from uniforms indexed by (batch row, absolute step, agent) and a
salt that each online call draws afresh; the salt and the metagrad policy live in a holder that deep copies share,
so the target mixer reuses the online call's salt (offset by one step) and samples with the *online* policy:
step t gets the same sub-teams whether it is mixed online or as a target. (The online call must come first.)
"""
from __future__ import annotations

import copy
import math
import weakref
from types import SimpleNamespace
from typing import Any, Callable, Mapping

import torch

from concord.components.state import learner_states
from concord.errors import ConfigError
from concord.modules.mixers.base import LocalPolicy, Mixer, MixerContext
from concord.modules.mixers.vast_assignment import (AssignmentPolicy, fixed_assignment, kmeans_assignment,
                                                    random_assignment, sample_assignment, step_uniforms)
from concord.registry import MIXERS, register_mixer



class _Shared:
    """What a VAST mixer shares with its deep copies (the target mixer): the online assignment policy and the
    salt of the latest online call's uniforms."""

    def __init__(self, policy: AssignmentPolicy | None) -> None:
        self.policy = policy
        self.salt = 0

    def __deepcopy__(self, memo: dict) -> "_Shared":
        return self


def discounted_returns(rewards: torch.Tensor, filled: torch.Tensor, gamma: float) -> torch.Tensor:
    """Monte-Carlo returns R_t = Σ_c γ^c r_{t+c} within each episode: (B, T), (B, T) -> (B, T)."""
    out = torch.zeros_like(rewards)
    nxt = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in range(rewards.shape[1] - 1, -1, -1):
        nxt = (rewards[:, t] + gamma * nxt) * filled[:, t]
        out[:, t] = nxt
    return out


@register_mixer("vast")
class VASTMixer(Mixer):
    """Q_tot = Ψ(Q_1^G, ..., Q_K^G) with Q_k^G = Σ_{j ∈ G_k} Q_j (eqs. 4-5); sub-teams G_k from X at every step."""

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace) -> None:
        super().__init__(env_info, args)
        if args.vast_mixer == "qtran" and args.qtran_inputs != "values":
            raise ConfigError("vast_mixer 'qtran' needs qtran_inputs=values: sub-teams have no hidden state or action")
        self.strategy = args.vast_assignment
        self.n_subteams = k = math.ceil(round(args.vast_eta * self.n_agents, 9))  # K = ⌈ηN⌉
        self.n_centroids = args.vast_centroids or math.ceil(k / 2)  # ⌈K/2⌉ (vast.md §5.2)
        if self.strategy == "spatial":
            if "positions" not in env_info.get("extras", {}):
                raise ConfigError("vast_assignment 'spatial' needs agent positions, but this env declares no "
                                  "'positions' extras (battle, warehouse, po_spread, smax and sc2 do)")
            if not 1 <= self.n_centroids <= k:
                raise ConfigError(f"vast_centroids must be in 1..K = {k}, got {self.n_centroids}")
        self.inner = MIXERS.get(args.vast_mixer)(dict(env_info, n_agents=k), args)
        self.state_last_action = args.env_args["state_last_action"]
        self.gamma = args.gamma
        self.grad_clip = args.vast_grad_norm_clip
        self.assigner = self.optimiser = None
        if self.strategy == "metagrad":
            self.assigner = AssignmentPolicy(self.state_dim + env_info["obs_shape"], self.n_agents, k,
                                             args.vast_agent_id)
            self.optimiser = torch.optim.Adam(self.assigner.parameters(), lr=args.vast_lr)
        self._shared = _Shared(self.assigner)
        self._last: tuple[Any, torch.Tensor] | None = None  # (weakref to ctx, its sub-team ids) of the last online call
        self.last_assignment: torch.Tensor | None = None  # (B, T, N) of the latest rollout_update, e.g. for plots

    # --- assignment ---------------------------------------------------------------------------
    def assign(self, states: torch.Tensor, obs: torch.Tensor | None, extras: Mapping[str, torch.Tensor],
               is_target: bool = False, fresh: bool = False) -> torch.Tensor:
        """Sub-team ids (B, T, N) of every agent at every step; ``fresh`` draws a new salt (online calls)."""
        b, t = states.shape[:2]
        dev = states.device
        if self.strategy == "fixed":
            return fixed_assignment(b, t, self.n_agents, self.n_subteams, dev)
        if self.strategy == "spatial":
            if "positions" not in extras:
                raise ConfigError("vast_assignment 'spatial': the batch has no 'positions' extras")
            return kmeans_assignment(extras["positions"], self.n_centroids)
        if fresh:
            self._shared.salt = int(torch.randint(0, 2**62, ()).item())
        u = step_uniforms(self._shared.salt, b, t, self.n_agents, int(is_target), dev)  # (B, T, N)
        if self.strategy == "random":
            return random_assignment(u, self.n_subteams)
        with torch.no_grad():
            return sample_assignment(self._shared.policy(states, obs), u)

    def subteam_context(self, sub_qs: torch.Tensor, groups: torch.Tensor, ctx: MixerContext) -> MixerContext:
        """Context of the inner mixer: values only. A sub-team has no action set, so it carries one pseudo-action,
        the taken one; ``greedy_qs`` are sums of the members' greedy values (eq. 4 at ū)."""
        b, t, k = sub_qs.shape
        greedy = None if ctx.greedy_qs is None else self._sum(ctx.greedy_qs, groups)  # (B, T, K)
        return MixerContext(all_qs=sub_qs.unsqueeze(-1), actions=groups.new_zeros(b, t, k),
                            avail_actions=torch.ones(b, t, k, 1, dtype=torch.bool, device=sub_qs.device),
                            greedy_qs=greedy, mask=ctx.mask, is_target=ctx.is_target)

    def _sum(self, values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Eq. 4: (B, T, N) member values -> (B, T, K) sub-team sums."""
        return values.new_zeros(*values.shape[:-1], self.n_subteams).scatter_add(-1, groups, values)

    # --- mixing -------------------------------------------------------------------------------
    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        """(B, T, N) -> (B, T, 1), or (B, T, K) with Ψ = il."""
        groups = self.assign(states, ctx.obs, ctx.extras, ctx.is_target, fresh=not ctx.is_target)  # (B, T, N)
        if not ctx.is_target:
            self._last = (weakref.ref(ctx), groups)
        return self.mix(agent_qs, states, groups, ctx)

    def mix(self, agent_qs: torch.Tensor, states: torch.Tensor, groups: torch.Tensor, ctx: MixerContext
            ) -> torch.Tensor:
        """Eqs. 4-5 for given sub-team ids ``groups`` (B, T, N): Ψ over the sub-team sums."""
        sub_qs = self._sum(agent_qs, groups)  # (B, T, K)
        return self.inner(sub_qs, states, self.subteam_context(sub_qs, groups, ctx))

    def auxiliary_losses(self, ctx: MixerContext, **kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Ψ's extra terms (QTRAN's constraints) on the sub-teams of the last online call with this ``ctx``."""
        if self._last is not None and self._last[0]() is ctx:
            groups = self._last[1]
        else:
            groups = self.assign(kwargs["states"], ctx.obs, ctx.extras, ctx.is_target)
        chosen = ctx.all_qs.gather(-1, ctx.actions.unsqueeze(-1)).squeeze(-1)  # (B, T, N)
        sub_qs = self._sum(chosen, groups)  # (B, T, K)
        return self.inner.auxiliary_losses(self.subteam_context(sub_qs, groups, ctx), **kwargs)

    def td_parameters(self) -> list[torch.nn.Parameter]:
        """Only Ψ's parameters: the assignment policy is trained by ``rollout_update``."""
        return list(self.inner.parameters())

    # --- on-policy assignment updates (eq. 6) ------------------------------------------------------
    def rollout_update(self, batch: Mapping[str, torch.Tensor], t_env: int,
                       local: Callable[[], LocalPolicy]) -> dict[str, float]:
        """Sub-team statistics of the latest episodes and, for metagrad, one REINFORCE step (eq. 6) with
        Â = R_t − Σ_a π_i(a|τ_i) Q_i(τ_i, a): Q_i and π_i from ``local()`` (the Q-learner's agents and ε-greedy
        policy, or an actor-critic's critics and actors), R_t the Monte-Carlo return of the episode."""
        d = batch
        states = learner_states(d, self.n_actions, self.state_last_action)  # (B, T, S)
        mask = d["filled"]  # (B, T)
        if self.strategy != "metagrad":
            extras = {k[6:]: v for k, v in d.items() if k.startswith("extra_")}
            groups = self.assign(states, d["obs"], extras, fresh=True)  # (B, T, N)
            entropy = math.log(self.n_subteams) if self.strategy == "random" else 0.0
            return self.subteam_stats(groups, mask, entropy)
        with torch.no_grad():
            lp = local()
            avail = d["avail_actions"]  # (B, T, N, A)
            baseline = (lp.pi * lp.qs.masked_fill(~avail, 0.0)).sum(dim=-1)  # (B, T, N)
            returns = discounted_returns(d["reward"], mask, self.gamma)  # (B, T)
        adv = returns.unsqueeze(-1) - baseline  # (B, T, N)
        # the last stored step only holds the final observation (never an action step): leave it out
        return self.assignment_step(states[:, :-1], d["obs"][:, :-1], adv[:, :-1], mask[:, :-1])

    def assignment_step(self, states: torch.Tensor, obs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor) -> dict[str, float]:
        """One eq. 6 step: sample k ~ X(·|i, τ_i, s_t) for every agent and step, ascend mean Â ∇ log X(k).

        ``states`` (B, T, S), ``obs`` (B, T, N, O), ``advantages`` (B, T, N), ``mask`` (B, T). Public so that an
        actor-critic learner can pass its own advantages (its actor's π_i, its critics' Q_i)."""
        log_probs = self.assigner(states, obs)  # (B, T, N, K)
        with torch.no_grad():
            groups = sample_assignment(log_probs, torch.rand(log_probs.shape[:-1], device=log_probs.device))
        chosen = log_probs.gather(-1, groups.unsqueeze(-1)).squeeze(-1)  # (B, T, N)
        m = mask.unsqueeze(-1).expand_as(chosen)  # (B, T, N)
        loss = -(advantages.detach() * chosen * m).sum() / m.sum().clamp(min=1.0)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.assigner.parameters(), self.grad_clip)
        self.optimiser.step()
        self.last_assignment = groups
        with torch.no_grad():
            n = m.sum().clamp(min=1.0)
            entropy = -(log_probs.exp() * log_probs).sum(-1)  # (B, T, N)
            stats = self.subteam_stats(groups, mask, float((entropy * m).sum() / n))
        stats.update(vast_policy_loss=loss.item(), vast_advantage_mean=float((advantages * m).sum() / n))
        return stats

    def subteam_stats(self, groups: torch.Tensor, mask: torch.Tensor, entropy: float) -> dict[str, float]:
        """Mean number of non-empty sub-teams, mean largest sub-team size, mean assignment entropy (nats)."""
        sizes = self._sum(torch.ones_like(groups, dtype=torch.float32), groups)  # (B, T, K)
        n = mask.sum().clamp(min=1.0)
        return {"vast_subteams_active": float(((sizes > 0).sum(-1) * mask).sum() / n),
                "vast_subteam_size_max": float((sizes.max(dim=-1).values * mask).sum() / n),
                "vast_assignment_entropy": entropy}

    # --- checkpoints --------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        """The assignment optimiser's state: ``state_dict()`` carries it, so checkpoints resume exactly. A deep
        copy (the target mixer) carries none: it never updates its policy."""
        return {"optimiser": self.optimiser.state_dict()} if self._owns_policy() else {}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state and self._owns_policy():
            self.optimiser.load_state_dict(copy.deepcopy(state["optimiser"]))

    def _owns_policy(self) -> bool:
        return self.assigner is not None and self._shared.policy is self.assigner

