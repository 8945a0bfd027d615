"""DADC's NAF-DQN back end (Gu et al. 2016, "Continuous deep Q-learning with model-based acceleration", §4;
dadc.md App. E: the paper's MABC run used Kostrikov's pytorch-ddpg-naf, its demand-response run ChainerRL's NAF).

The critic is Q(X, a) = V(X) − ½ (a − μ(X))ᵀ P(X) (a − μ(X)), P = L Lᵀ (``NAFHead``); the coordinator acts
with a = μ(X_t) + σ ε, clipped to the box [−b, b] (ε from the common generator, so every copy draws the same a).
Per batch: the AIS takes one Adam step on L_AIS (eq. 4); the batch's episodes enter a FIFO replay of
``dadc_naf_replay_episodes`` episodes; X is recomputed for the whole replay by the current AIS (detached, as the
critic of every back end sees it); then ``dadc_naf_gradient_steps`` Adam steps on minibatches of
``dadc_naf_minibatch`` transitions, each on smoothL1(Q(X_t, a_t), R_t + γ V'(X_{t+1})) — V' of the target
network, since max_a Q'(X, a) = V'(X) — followed by the soft target update ϑ' ← (1 − τ) ϑ' + τ ϑ (Gu et al.
Alg. 1; ChainerRL's soft_update_tau 1e-2).

The action a: for a continuous prescription set a = θ (the prescription parameters, e.g. demand response's six
logits). For a discrete set (MABC) NAF needs a continuous action, so a ∈ [−b, b]^O are logits of a randomised
prescription: the option is drawn from softmax(a) by the common generator and θ is its one-hot (what the passive
agents apply and the AIS sees). Randomising over prescriptions with common randomness keeps the coordinator's
problem an MDP over the same prescriptions, so its optimum is the deterministic VI optimum, approached as the
logits saturate (b = 5: one option has probability ≥ 1 − 2e^{−10} at a box corner).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from concord.learners.dadc_backends.base import Backend, Batch, Group

KEYS = ("z", "theta", "action", "reward", "filled", "terminated")


class NAF(Backend):
    head = "naf"

    def __init__(self, learner) -> None:
        super().__init__(learner)
        self.target = copy.deepcopy(self.net.naf).requires_grad_(False)
        self.replay: dict[str, torch.Tensor] = {}  # key -> (capacity, T, ...), filled FIFO
        self.size = self.pos = 0

    def groups(self) -> list[Group]:
        a, n = self.args, self.net
        return [("ais", n.ais_parameters(), a.dadc_ais_lr, a.dadc_ais_lr_power),
                ("critic", n.critic_parameters(), a.dadc_naf_lr, a.dadc_critic_lr_power)]

    def add(self, cb: Batch) -> None:
        """Append the batch's episodes to the FIFO replay (the oldest are overwritten)."""
        cap = self.args.dadc_naf_replay_episodes
        if "action" not in cb:
            if self.net.discrete:
                raise ValueError("NAF on a discrete prescription set needs the coordinator's action (dadc_action)")
            cb = {**cb, "action": cb["theta"]}  # a continuous set: the action is θ
        if not self.replay:
            self.replay = {k: cb[k].new_zeros(cap, *cb[k].shape[1:]) for k in KEYS}
        for b in range(cb["filled"].shape[0]):
            for k in KEYS:
                self.replay[k][self.pos] = cb[k][b]
            self.pos, self.size = (self.pos + 1) % cap, min(self.size + 1, cap)

    def train(self, cb: Batch) -> list[dict[str, float]]:
        L, a = self.learner, self.args
        steps = self.ais_steps(cb)
        self.add(cb)
        data = {k: v[: self.size] for k, v in self.replay.items()}
        with torch.no_grad():
            x = L.features(data)  # (R, T, d)
        m = data["filled"][:, :-1].bool()  # (R, T-1)
        xs, xn = x[:, :-1][m], x[:, 1:][m]  # (N, d) X_t and X_{t+1}
        act, r, term = data["action"][:, :-1][m], data["reward"][:, :-1][m], data["terminated"][:, :-1][m]
        n = xs.shape[0]
        for _ in range(a.dadc_naf_gradient_steps):
            idx = torch.randint(n, (min(a.dadc_naf_minibatch, n),), generator=L.shuffle_gen)
            q = self.net.naf.q(xs[idx], act[idx])  # (M,)
            with torch.no_grad():
                y = r[idx] + a.gamma * (1 - term[idx]) * self.target(xn[idx])[0]  # (M,)
            loss = F.smooth_l1_loss(q, y)
            stats = L.step(loss, {"critic_loss": loss.item(), "q_mean": q.mean().item()})
            with torch.no_grad():
                for pt, p in zip(self.target.parameters(), self.net.naf.parameters()):
                    pt.mul_(1 - a.dadc_naf_tau).add_(p, alpha=a.dadc_naf_tau)
            steps.append(stats)
        return steps

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target.state_dict(), "replay": dict(self.replay), "size": self.size, "pos": self.pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
        self.replay = {k: v.clone() for k, v in state["replay"].items()}
        self.size, self.pos = state["size"], state["pos"]
