"""DADC's learner (dadc.md §5): each agent's copy trains the state approximator, the critic and the coordinator's
actor on common information only — Z_t, θ_t and the team reward R_t — so copies with the same seed and data stay
identical (§5, "same random number generator and the same seed").

Data path: each round goes to rollout storage; once it holds ``rollout_episodes`` episodes (a batch of steps:
3 x 100 = 300 for MABC, 2 x 100 = 200 for demand response, App. E) the learner trains on exactly those, from
``train_common`` on the common part of the batch, then empties the storage.

- AIS (eq. 4): L_AIS = λ·mean smoothL1(R̂_t − R_t) + (1 − λ)·mean NLL_{N(μ_{t+1}, I)}(Y_{t+1}) (the paper sums the
  NLL; we average it). The target Y (``dadc_ais_target``) is by default the next common observation Z_{t+1}:
  the (P2a)+(P2b) form of an AIS (dadc.md, "Alternative characterization of AIS": X evolves state-like,
  X_{t+1} = ρ̂(X_t, Z_{t+1}, θ_t), which the GRU is by construction, and predicts the next observation). With
  ``x`` the target is X_{t+1} itself (eq. 4 literally, detached): a constant X minimises that NLL trivially, and
  shrinking X's scale lowers it without making X any more predictive, so it pulls the AIS towards collapse
  (measured in docs/results/dadc.md). Skipped when ``dadc_ais`` is false.
- the back end (``dadc_backend``, ``concord.learners.dadc_backends.BACKENDS``) updates critic and actor: ``ac``
  (eqs. 5-6), ``ppo``, ``trpo``, ``naf``. Every back end sees X_t detached (only L_AIS trains the AIS).

Three time-scales (§5, after eq. 6): one Adam with a parameter group per component (the back end lists them),
learning rate lr_g / (1 + k / τ)^{p_g} after k updates, with the exponents p_ais < p_critic < p_actor in (1/2, 1]
so that b_k / a_k -> 0 and c_k / b_k -> 0.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from concord.components.rollout_storage import RolloutStorage
from concord.controllers.dadc import DADCController
from concord.errors import ConfigError
from concord.learners.base import Learner, mean_stats
from concord.learners.dadc_backends import BACKENDS
from concord.learners.on_policy import masked_mean
from concord.registry import register_learner

Batch = dict[str, torch.Tensor]


@register_learner("dadc")
class DADCLearner(Learner):
    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        if not isinstance(mac, DADCController):
            raise ConfigError(f"learner 'dadc' needs mac=dadc, got mac={args.mac}")
        super().__init__(mac, env_info, args, device)
        self.net, self.pset = mac.agent, mac.pset
        self.storage = RolloutStorage(self.scheme, args.rollout_episodes, self.max_seq_length)
        self.shuffle_gen = torch.Generator().manual_seed(int(args.seed) + 2)  # minibatches, the same in every copy
        self.backend = BACKENDS[args.dadc_backend](self)
        self.groups = [g for g in self.backend.groups() if g[1]]
        self.optimiser = torch.optim.Adam([{"params": p, "lr": lr} for _, p, lr, _ in self.groups],
                                          eps=args.dadc_optim_eps)
        self.n_rollouts = 0  # updates on a full storage (k of the learning-rate schedules)

    # --- the schedule ---------------------------------------------------------------------------
    def update(self, batch: Any, t_env: int, episode: int) -> dict[str, float]:
        self.storage.add(batch)
        if not self.storage.full():
            return {}
        data = self.storage.take().to_torch(self.device)
        return self.train_common(self.common_batch(data))

    def common_batch(self, data: Batch) -> Batch:
        """The common information of stored episodes: Z (B, T, dz), θ (B, T, dθ), log ψ, R, filled, terminated
        (B, T), and the NAF coordinator's action (B, T, dθ) where it differs from θ (a discrete set)."""
        cb = {"z": self.pset.common(data["obs"]), "theta": data["dadc_theta"],
              "log_prob": data["dadc_log_prob"][..., 0], "reward": data["reward"], "filled": data["filled"],
              "terminated": data["terminated"]}
        if "dadc_action" in data:
            cb["action"] = data["dadc_action"]
        return cb

    def learning_rates(self) -> dict[str, float]:
        k, tau = self.n_rollouts, self.args.dadc_lr_decay_updates
        return {name: lr / (1.0 + k / tau) ** power for name, _, lr, power in self.groups}

    def train_common(self, cb: Batch) -> dict[str, float]:
        """One update on a batch of common information (what each decentralised copy runs); returns statistics."""
        lrs = self.learning_rates()
        for (name, *_), group in zip(self.groups, self.optimiser.param_groups):
            group["lr"] = lrs[name]
        steps = self.backend.train(cb)
        self.n_rollouts += 1
        return {**mean_stats(steps), **{f"lr_{k}": v for k, v in lrs.items()}}

    def step(self, loss: torch.Tensor, stats: dict[str, float]) -> dict[str, float]:
        """One Adam step on ``loss``, each group's gradient clipped to ``dadc_grad_norm_clip``; adds the norms."""
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for (name, *_), group in zip(self.groups, self.optimiser.param_groups):
            if any(p.grad is not None for p in group["params"]):
                stats[f"grad_norm_{name}"] = float(torch.nn.utils.clip_grad_norm_(group["params"],
                                                                                  self.args.dadc_grad_norm_clip))
        self.optimiser.step()
        self.n_updates += 1
        return stats

    # --- state approximator (eq. 4) -----------------------------------------------------------------
    def features(self, cb: Batch) -> torch.Tensor:
        """X_t (B, T, d) for every stored step (incl. the one after the last): the AIS unrolled from t = 0."""
        theta = cb["theta"]  # (B, T, dθ)
        theta_prev = torch.cat([torch.zeros_like(theta[:, :1]), theta[:, :-1]], dim=1)  # θ_{t-1}, 0 at t = 0
        return self.net.ais_unroll(cb["z"], theta_prev)  # (B, T, d)

    def ais(self, cb: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """X_t (B, T, d) for every stored step, and L_AIS with its parts."""
        x = self.features(cb)
        if not self.net.use_ais:
            return x, torch.zeros((), device=x.device), {}
        theta, mask = cb["theta"], cb["filled"][:, :-1]  # (B, T, dθ); (B, T-1) steps taken, each has a successor
        r_hat, mu = self.net.predict(x[:, :-1], theta[:, :-1])  # (B, T-1), (B, T-1, pred_dim)
        loss_r = masked_mean(F.smooth_l1_loss(r_hat, cb["reward"][:, :-1], reduction="none"), mask)
        target = cb["z"][:, 1:] if self.args.dadc_ais_target == "z" else x[:, 1:].detach()  # (B, T-1, pred_dim)
        nll = 0.5 * ((target - mu) ** 2).sum(-1) + 0.5 * mu.shape[-1] * math.log(2 * math.pi)  # (B, T-1)
        loss_nu = masked_mean(nll, mask)
        lam = self.args.dadc_ais_lambda
        loss = lam * loss_r + (1 - lam) * loss_nu
        return x, loss, {"ais_loss": loss.item(), "ais_reward_loss": loss_r.item(), "ais_nll": loss_nu.item()}

    # --- checkpoints --------------------------------------------------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        return {"dadc": self.net}

    def state_dict(self) -> dict[str, Any]:
        return {"mac": self.mac.state_dict(), "optimiser": self.optimiser.state_dict(),
                "storage": self.storage.state_dict(), "n_updates": self.n_updates, "n_rollouts": self.n_rollouts,
                "shuffle_gen": self.shuffle_gen.get_state(), "backend": self.backend.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mac.load_state_dict(state["mac"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.storage.load_state_dict(state["storage"])
        self.n_updates, self.n_rollouts = state["n_updates"], state["n_rollouts"]
        self.shuffle_gen.set_state(state["shuffle_gen"])
        self.backend.load_state_dict(state["backend"])
