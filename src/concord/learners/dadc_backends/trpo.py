"""DADC's TRPO back end (Schulman et al. 2015, "Trust region policy optimization", §6 and App. C; dadc.md App. E.2
used ChainerRL's TRPO, whose defaults these keys take: max KL 0.01, 10 conjugate-gradient iterations, damping
1e-2, 10 backtracking steps, value function by Adam with 3 epochs of minibatches of 64 steps).

Per batch (a fixed set of steps of common information):
1. the AIS takes one Adam step on L_AIS (eq. 4), if there is an AIS;
2. GAE(λ) advantages Â (normalised) and λ-returns from V(X_t) (X_t detached, as for every back end);
3. the policy ψ_ϑ takes one natural-gradient step: g = ∇ L(ϑ) of the surrogate L(ϑ) = mean(ψ_ϑ/ψ_old · Â) +
   c_H·mean H(ψ_ϑ), s = F⁻¹ g by conjugate gradient on the Fisher-vector product F v = ∇(∇ KL̄ · v) + damping·v
   (KL̄ = mean KL(ψ_old ‖ ψ_ϑ), App. C.1), the maximal step β s with β = sqrt(2 δ / sᵀ F s) (δ = max KL), then a
   backtracking line search (β s, β s / 2, ...) that accepts the first step with KL̄ ≤ δ and L improved, else
   none (App. C: "we perform a line search ... the KL constraint is satisfied and the surrogate improves");
4. the critic regresses V(X_t) on the λ-returns (squared error), Adam, ``dadc_trpo_vf_epochs`` epochs of
   ``dadc_trpo_vf_minibatch``-step minibatches drawn by the learner's common generator.

ψ_old is the policy before the step on the AIS of this update (the AIS may have moved since the batch was
sampled), so the ratio is 1 at ϑ_old and ∇L is the policy gradient on the current AIS.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from concord.learners.dadc_backends.base import Backend, Batch, Group
from concord.learners.dadc_backends.ppo import gae_targets


def conjugate_gradient(avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve A x = b for a symmetric positive-definite A given only x -> A x (Hestenes-Stiefel CG;
    exact after n iterations in exact arithmetic for an n x n A). b (n,) -> x (n,)."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()  # residual b − A x and search direction
    rr = r @ r
    for _ in range(iters):
        if rr <= tol:
            break
        ap = avp(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


class TRPO(Backend):
    head = "v"

    def groups(self) -> list[Group]:
        a, n = self.args, self.net  # the actor is moved by the natural-gradient step, not by Adam
        return [("ais", n.ais_parameters(), a.dadc_ais_lr, a.dadc_ais_lr_power),
                ("critic", n.critic_parameters(), a.dadc_trpo_vf_lr, a.dadc_critic_lr_power)]

    def train(self, cb: Batch) -> list[dict[str, float]]:
        L, a = self.learner, self.args
        steps = self.ais_steps(cb)
        prep = gae_targets(L, cb, a.dadc_gae_lambda)
        x = prep["x"][:, :-1]  # (B, T-1, d), the AIS after this update's AIS step
        m = cb["filled"][:, :-1].bool()  # (B, T-1)
        xs, th, adv, ret = x[m], cb["theta"][:, :-1][m], prep["adv"][m], prep["ret"][m]  # (N, d), (N, dθ), (N,)
        pol = self.policy_step(xs, th, adv)
        n = xs.shape[0]
        for _ in range(a.dadc_trpo_vf_epochs):
            perm = torch.randperm(n, generator=L.shuffle_gen)
            for idx in torch.split(perm, a.dadc_trpo_vf_minibatch):
                loss = 0.5 * ((self.net.value(xs[idx]) - ret[idx]) ** 2).mean()
                steps.append(L.step(loss, {"critic_loss": loss.item()}))
        steps[-1].update(pol)
        return steps

    # --- the natural-gradient step (App. C) -----------------------------------------------------------
    def _dist(self, x: torch.Tensor) -> torch.distributions.Distribution:
        out = self.net.policy(x)
        if self.net.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Independent(torch.distributions.Normal(out, self.net.log_std.exp()), 1)

    def _log_prob(self, d: torch.distributions.Distribution, theta: torch.Tensor) -> torch.Tensor:
        return d.log_prob(theta.argmax(-1)) if self.net.discrete else d.log_prob(theta)

    def surrogate(self, x: torch.Tensor, theta: torch.Tensor, adv: torch.Tensor, logp_old: torch.Tensor
                  ) -> torch.Tensor:
        """L(ϑ) = mean(exp(log ψ_ϑ − log ψ_old) Â) + c_H mean H(ψ_ϑ) over N steps."""
        d = self._dist(x)
        ratio = torch.exp(self._log_prob(d, theta) - logp_old)  # (N,)
        return (ratio * adv).mean() + self.args.dadc_entropy_coef * d.entropy().mean()

    def mean_kl(self, x: torch.Tensor, old: torch.distributions.Distribution) -> torch.Tensor:
        return torch.distributions.kl_divergence(old, self._dist(x)).mean()

    def policy_step(self, x: torch.Tensor, theta: torch.Tensor, adv: torch.Tensor) -> dict[str, float]:
        """One TRPO step of the actor on N steps: X (N, d), θ (N, dθ), Â (N,). Returns its statistics."""
        a = self.args
        params = self.net.actor_parameters()
        with torch.no_grad():
            d_old = self._dist(x)
            old = (torch.distributions.Categorical(logits=d_old.logits) if self.net.discrete else
                   torch.distributions.Independent(torch.distributions.Normal(d_old.mean, d_old.stddev), 1))
            logp_old = self._log_prob(old, theta)  # (N,)
        surr = self.surrogate(x, theta, adv, logp_old)
        g = parameters_to_vector(torch.autograd.grad(surr, params))  # (P,)
        kl_grad = parameters_to_vector(torch.autograd.grad(self.mean_kl(x, old), params, create_graph=True))

        def fvp(v: torch.Tensor) -> torch.Tensor:  # F v = ∇(∇KL̄ · v) + damping v
            hv = torch.autograd.grad(kl_grad @ v, params, retain_graph=True)
            return parameters_to_vector(hv).detach() + a.dadc_trpo_cg_damping * v

        s = conjugate_gradient(fvp, g, a.dadc_trpo_cg_iters)
        shs = s @ fvp(s)
        full = torch.sqrt(2 * a.dadc_trpo_max_kl / shs.clamp(min=1e-12)) * s  # (P,) the maximal step
        start, base = parameters_to_vector(params).detach(), surr.item()
        accepted, kl, gain = -1, 0.0, 0.0
        with torch.no_grad():
            for i in range(a.dadc_trpo_line_search_steps):
                vector_to_parameters(start + full * 0.5 ** i, params)
                kl = self.mean_kl(x, old).item()
                gain = self.surrogate(x, theta, adv, logp_old).item() - base
                if kl <= a.dadc_trpo_max_kl and gain > 0:
                    accepted = i
                    break
            if accepted < 0:
                vector_to_parameters(start, params)
                kl, gain = 0.0, 0.0
        return {"actor_loss": -base, "trpo_kl": kl, "trpo_surrogate_gain": gain, "trpo_backtracks": float(accepted),
                "entropy": old.entropy().mean().item()}
