"""BN-DAG: context-aware Bayesian-network joint policies (bn_dag_policies.md §4, §6, Fig. 2).

The joint policy factorises over a DAG G as π(a | o) = Π_i π^i(a^i | o^i, a^{P^i}) (§4); G(o) = Πᵀ U Π is drawn
per step by the DAG learner of ``concord.modules.dag`` (``bn_dag: learned``, §6.1), or fixed to a baseline of
§7.2 (``uncorrelated``, ``line`` = {(j, j+1)}, ``fully`` = {(j, i) : j < i}; topological order 1..N).

Rollouts sample agents in a topological order of the step's DAG, level by level (all agents whose parents have
acted go together): agent i's input is basic_mac's input followed by its parents' one-hot actions, N slots of
``n_actions`` (slot j holds a^j if j ∈ P^i, zeros otherwise; §7.4), and with ``bn_parent_obs`` also N slots of
parents' observations (Table 2, Aloha: the parents' o^{P^i} beside a^{P^i}; concatenated here, one agent network,
instead of the table's two Base towers). The sampled DAG (edges, order, and the noise that drew it) is a stored
per-step output, so ``forward_seq`` recomputes every agent's conditional logits under the stored graph with the
stored parents' actions (teacher forcing): the learner's per-agent log-probabilities sum to the joint
log π(a | o) = Σ_i log π^i(a^i | o^i, a^{P^i}), and PPO's ratios are those of the sampled joint actions. Gradients
reach the DAG nets through the straight-through G in the children's inputs (Fig. 2, red path).

``policy_losses`` adds the density regulariser α|ρ(G) − η| (§6.3) with (α, η) annealed per §7.4.4 (a pure function
of t_env). Training rollouts log the DAG density and the KL between the BN policy and the same policy with the
empty DAG (Fig. 10), Σ_i KL(π^i(·|o^i, a^{P^i}) ‖ π^i(·|o^i, 0)) at the sampled parents' actions (an unbiased
estimate of the joint KL). ``decentralised()`` runs the policy with the empty DAG (decentralised execution).
Test episodes sample the DAG as training does (``test_greedy`` makes only the actions greedy). Any action
selector works: it is called once per topological level on that level's agents.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from concord.components.density_anneal import DensityAnneal
from concord.components.episode_buffer import Field, Scheme
from concord.controllers.basic_mac import BasicMAC
from concord.envs.base import EnvObs
from concord.modules.agents.non_shared import NonSharedAgents
from concord.modules.dag import DAGLearner, density, fixed_dag
from concord.registry import register_mac

FIXED_DAGS = ("uncorrelated", "line", "fully")


def topological_levels(edges: np.ndarray) -> np.ndarray:
    """Depth of each agent in its DAG (longest path from a root): edges (k, N, N), G[j, i] = 1 iff j -> i,
    -> (k, N) int64. Agents of one depth have all their parents at smaller depths."""
    k, n = edges.shape[:2]
    depth = np.zeros((k, n), dtype=np.int64)
    par = edges > 0
    for _ in range(n):
        new = np.where(par, depth[:, :, None] + 1, 0).max(axis=1)  # (k, N): 1 + deepest parent
        if np.array_equal(new, depth):
            break
        depth = new
    return depth


@register_mac("bn_dag")
class BNDAGMAC(BasicMAC):
    """basic_mac's inputs and agent network, sampled agent by agent in a DAG's topological order."""

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        self.obs_dim = env_info["obs_shape"]
        super().__init__(env_info, args, device)
        n = self.n_agents
        self.mode = args.bn_dag
        self.dag_learner: DAGLearner | None = None
        if self.mode == "learned":
            self.dag_learner = DAGLearner(n, self.obs_dim, args.bn_dag_hidden, args.bn_edge_net, args.bn_perm_net,
                                          args.bn_tau, args.bn_sinkhorn_iters).to(device)
            self._fixed = None
        else:
            self._fixed = fixed_dag(self.mode, n)  # (N, N)
        self.anneal = DensityAnneal(args.bn_regulariser, args.t_max, args.bn_anneal_a, args.bn_anneal_b,
                                    args.bn_anneal_c, args.bn_eta_start, args.bn_alpha_start, args.bn_alpha_end,
                                    args.bn_eta_steps, args.bn_alpha_steps)
        self._empty = False
        self._density_sum, self._kl_sum, self._n_steps = 0.0, 0.0, 0
        self._t_env = 0

    def agent_input_dim(self, env_info: Mapping[str, Any]) -> int:
        """basic_mac's input + N parents' action slots (+ N parents' observation slots with ``bn_parent_obs``)."""
        n = env_info["n_agents"]
        extra = n * env_info["n_actions"] + (n * env_info["obs_shape"] if self.args.bn_parent_obs else 0)
        return super().agent_input_dim(env_info) + extra

    # --- the DAG --------------------------------------------------------------------------------
    def batch_fields(self) -> Scheme:
        fields = dict(self.selector.batch_fields(self.n_agents))
        if self.dag_learner is not None:
            n = self.n_agents
            fields["dag_edges"] = Field((n, n), np.float32)  # G[j, i] = 1 iff j is a parent of i
            fields["dag_order"] = Field((n,), np.int64)  # agent at each topological position
            fields["dag_edge_noise"] = Field((n, n), np.float32)  # logistic noise of the edge Gumbel-softmax
            if self.dag_learner.learn_perm:
                fields["dag_perm_noise"] = Field((n, n), np.float32)  # Gumbel noise of the Gumbel-Sinkhorn
        return fields

    @contextlib.contextmanager
    def decentralised(self) -> Iterator[None]:
        """Within the block every step uses the empty DAG: decentralised execution of the same local policies."""
        prev, self._empty = self._empty, True
        try:
            yield
        finally:
            self._empty = prev

    def _rollout_dag(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """This step's DAG for k envs: ``dag_edges`` (k, N, N) and, for a learned DAG, its stored fields."""
        k, n = obs.shape[0], self.n_agents
        if self.dag_learner is None:
            edges = np.zeros((n, n), np.float32) if self._empty else self._fixed
            return {"dag_edges": np.broadcast_to(edges, (k, n, n))}
        if self._empty:
            z = np.zeros((k, n, n), np.float32)
            out = {"dag_edges": z, "dag_order": np.broadcast_to(np.arange(n), (k, n)).copy(), "dag_edge_noise": z}
        else:
            out = self.dag_learner.sample(torch.from_numpy(obs).to(self.device), noise=True)
        if not self.dag_learner.learn_perm:
            out.pop("dag_perm_noise", None)
        elif "dag_perm_noise" not in out:
            out["dag_perm_noise"] = np.zeros((k, n, n), np.float32)
        return out

    def dag(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The stored DAGs of a batch, (B, T, N, N); straight-through (gradients to the DAG nets) when learned."""
        obs = batch["obs"]  # (B, T, N, obs_dim)
        b, t = obs.shape[:2]
        if self.dag_learner is None:
            return torch.from_numpy(self._fixed).to(self.device).expand(b, t, -1, -1)
        perm_noise = batch["dag_perm_noise"] if self.dag_learner.learn_perm else None
        return self.dag_learner.straight_through(obs, batch["dag_edges"], batch["dag_order"],
                                                 batch["dag_edge_noise"], perm_noise)

    def parent_inputs(self, g: torch.Tensor, actions_onehot: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Each agent's parent slots: g (..., N, N) with g[j, i] = 1 iff j -> i, actions (..., N, A), obs (..., N, D)
        -> (..., N, N*A [+ N*D]): slot j of agent i is g[j, i] · (a^j [, o^j])."""
        gi = g.transpose(-1, -2).unsqueeze(-1)  # (..., N_child, N_parent, 1)
        parts = [(gi * actions_onehot.unsqueeze(-3)).flatten(-2)]  # (..., N, N*A)
        if self.args.bn_parent_obs:
            parts.append((gi * obs.unsqueeze(-3)).flatten(-2))  # (..., N, N*D)
        return torch.cat(parts, dim=-1)

    def row_parent_inputs(self, parents: torch.Tensor, actions_onehot: torch.Tensor, obs: torch.Tensor
                          ) -> torch.Tensor:
        """``parent_inputs`` for single (env, agent) rows: parents (m, N) (1 for the row agent's parents),
        actions (m, N, A), obs (m, N, D) -> (m, N*A [+ N*D])."""
        p = parents.unsqueeze(-1)  # (m, N, 1)
        parts = [(p * actions_onehot).flatten(-2)]  # (m, N*A)
        if self.args.bn_parent_obs:
            parts.append((p * obs).flatten(-2))  # (m, N*D)
        return torch.cat(parts, dim=-1)

    # --- rollouts -------------------------------------------------------------------------------
    def _step_rows(self, x: torch.Tensor, h: torch.Tensor, agents: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One agent-network step for rows of agents ``agents`` (m,): x (m, d), h (m, H) -> (m, A), (m, H)."""
        if not isinstance(self.agent, NonSharedAgents):
            return self.agent.step(x, h)
        out = x.new_zeros(x.shape[0], self.n_actions)
        hid = h.clone()
        for j in np.unique(agents):
            sub = torch.from_numpy(np.flatnonzero(agents == j)).to(x.device)
            o, hh = self.agent.agents[int(j)].step(x[sub], h[sub])
            out[sub], hid[sub] = o, hh
        return out, hid

    @torch.no_grad()
    def select_actions(self, obs: EnvObs, last_actions: np.ndarray, env_ids: np.ndarray, t_env: int,
                       test_mode: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions (k, N) sampled level by level in the DAG's topological order, the selector's per-agent outputs
        and the DAG's stored fields."""
        k, n, n_act = len(env_ids), self.n_agents, self.n_actions
        dag = self._rollout_dag(obs.obs)
        edges_np = dag["dag_edges"]  # (k, N, N)
        levels = topological_levels(edges_np)  # (k, N)
        dev = self.device
        base = torch.from_numpy(self.rollout_inputs(obs.obs, last_actions)).to(dev)  # (k, N, d0)
        o = torch.from_numpy(np.ascontiguousarray(obs.obs, dtype=np.float32)).to(dev)  # (k, N, D)
        edges = torch.from_numpy(np.array(edges_np, dtype=np.float32)).to(dev)  # (k, N, N), a writable copy
        h_old = self.hidden[env_ids]  # (k, N, H)
        h_new = h_old.clone()
        onehot = torch.zeros(k, n, n_act, device=dev)  # (k, N, A): actions of the agents that have acted
        logits = torch.zeros(k, n, n_act, device=dev)  # (k, N, A)
        actions = np.zeros((k, n), dtype=np.int64)
        sel: dict[str, np.ndarray] = {}
        for level in range(int(levels.max()) + 1):
            e_idx, a_idx = np.nonzero(levels == level)  # rows (env, agent) of this level
            et, at = torch.from_numpy(e_idx).to(dev), torch.from_numpy(a_idx).to(dev)
            x = torch.cat([base[et, at], self.row_parent_inputs(edges[et, :, at], onehot[et], o[et])],
                          dim=-1)  # (m, input_dim)
            out, h = self._step_rows(x, h_old[et, at], a_idx)  # (m, A), (m, H)
            h_new[et, at] = h
            logits[et, at] = out
            a, outs = self.selector.select(out.cpu().numpy()[:, None], obs.avail_actions[e_idx, a_idx][:, None],
                                           t_env, test_mode)  # (m, 1), {field: (m, 1, ...)}
            actions[e_idx, a_idx] = a[:, 0]
            onehot[et, at] = F.one_hot(torch.from_numpy(a[:, 0]).to(dev), n_act).float()
            for key, v in outs.items():
                sel.setdefault(key, np.zeros((k, n) + v.shape[2:], dtype=v.dtype))[e_idx, a_idx] = v[:, 0]
        self.hidden[env_ids] = h_new
        if not test_mode:
            self._t_env = t_env
            self._record(edges_np, base, o, h_old, logits, obs.avail_actions, t_env)
        fields = dag if self.dag_learner is not None else {}  # a fixed DAG is not stored
        return actions, {**sel, **fields}

    def _record(self, edges: np.ndarray, base: torch.Tensor, o: torch.Tensor, h_old: torch.Tensor,
                logits: torch.Tensor, avail: np.ndarray, t_env: int) -> None:
        """Accumulate the DAG density and KL(BN policy ‖ empty-DAG policy) of a training step (Fig. 10)."""
        k, n = edges.shape[:2]
        self._density_sum += float(edges.sum()) * 2.0 / max(n * (n - 1), 1)  # Σ over envs of ρ(G)
        self._n_steps += k
        if not edges.any():
            return  # the empty DAG: the two policies coincide
        zeros = torch.zeros(k, n, self.n_actions, device=self.device)
        x = torch.cat([base, self.parent_inputs(torch.zeros(k, n, n, device=self.device), zeros, o)], dim=-1)
        agents = np.tile(np.arange(n), k)
        out0, _ = self._step_rows(x.view(k * n, -1), h_old.reshape(k * n, -1), agents)  # (k*N, A)
        av = torch.from_numpy(avail).to(self.device)
        p = self.selector.probs(logits, av, t_env)  # (k, N, A)
        q = self.selector.probs(out0.view(k, n, -1), av, t_env)  # (k, N, A)
        kl = torch.where(p > 0, p * (p.clamp(min=1e-12).log() - q.clamp(min=1e-12).log()), torch.zeros_like(p))
        self._kl_sum += float(kl.sum())

    def stats(self) -> dict[str, float]:
        out = dict(self.selector.stats())
        if self._n_steps:
            out["dag_density"] = self._density_sum / self._n_steps
            out["bn_kl_empty"] = self._kl_sum / self._n_steps
        alpha, eta = self.anneal(self._t_env)
        out["bn_alpha"], out["bn_eta"] = alpha, eta
        self._density_sum, self._kl_sum, self._n_steps = 0.0, 0.0, 0
        return out

    # --- training -------------------------------------------------------------------------------
    def forward_seq(self, batch: Mapping[str, torch.Tensor], agent: torch.nn.Module | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each agent's conditional logits under the stored DAG and the stored parents' actions:
        outputs (B, T, N, A), hiddens (B, T, N, H)."""
        agent = agent or self.agent
        obs = batch["obs"]  # (B, T, N, D)
        b, t = obs.shape[:2]
        acts = batch["actions"]  # (B, T, N)
        onehot = F.one_hot(acts, self.n_actions).float()  # (B, T, N, A)
        par = self.parent_inputs(self.dag(batch), onehot, obs)  # (B, T, N, slots)
        inputs = torch.cat([self.build_inputs(obs, self.shifted_actions(acts)), par], dim=-1)  # (B, T, N, input_dim)
        inputs = inputs.permute(0, 2, 1, 3).reshape(b * self.n_agents, t, -1)  # (B*N, T, input_dim)
        out, h = agent(inputs, agent.init_hidden(b * self.n_agents, self.device))
        out = out.reshape(b, self.n_agents, t, -1).permute(0, 2, 1, 3)  # (B, T, N, A)
        h = h.reshape(b, self.n_agents, t, -1).permute(0, 2, 1, 3)  # (B, T, N, H)
        return out, h

    def policy_losses(self, batch: Mapping[str, torch.Tensor], t_env: int) -> dict[str, torch.Tensor]:
        """The density regulariser α|ρ̄(G) − η| (§6.3), ρ̄ the mean density of the batch's stored DAGs (straight-
        through), with (α, η) of the annealing schedule (§7.4.4) at ``t_env``; none for a fixed DAG or α = 0."""
        alpha, eta = self.anneal(t_env)
        if self.dag_learner is None or alpha == 0.0:
            return {}
        g = self.dag({k: v[:, :-1] for k, v in batch.items()})  # (B, T-1, N, N)
        mask = batch["filled"][:, :-1]  # (B, T-1)
        rho = (density(g) * mask).sum() / mask.sum().clamp(min=1.0)  # batch-mean density over the taken steps
        return {"density_reg": alpha * (rho - eta).abs()}

    # --- parameters and checkpoints ----------------------------------------------------------------
    def parameters(self) -> Iterator[torch.nn.Parameter]:
        yield from self.agent.parameters()
        if self.dag_learner is not None:
            yield from self.dag_learner.parameters()

    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(),
                "dag": self.dag_learner.state_dict() if self.dag_learner is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        if self.dag_learner is not None:
            self.dag_learner.load_state_dict(state["dag"])
