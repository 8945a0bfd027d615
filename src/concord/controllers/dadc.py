"""DADC's controller (dadc.md §5, Fig. 1): the virtual coordinator picks a prescription from common information;
each passive agent applies its part to its own local information.

Per step and env: Z_t = the prescription set's common features of the observation; X_t = AIS(Z_t, θ_{t-1});
θ_t ~ ψ(· | X_t), drawn from the *common* generator (seeded by ``seed``: every agent's copy draws the same θ_t,
§5 and footnote 3); then agent k's action is drawn by the action selector from log h_{θ_t}^k(· | L^k_t) (the
multinomial selector samples the prescription; ε-greedy applies it greedily). With the NAF back end the
coordinator acts by a = clip(μ(X_t) + σ ε, ±b) (ε from the common generator; test episodes take a = μ): for a
continuous set θ_t = a, for a discrete one a are logits and the option is drawn from softmax(a) by the common
generator (``concord.learners.dadc_backends.naf``); a is stored as ``dadc_action``. ``prescribe`` is the coordinator
part alone, which is all that a decentralised agent's copy runs on common information. Test episodes draw θ from
a second generator, so evaluation never shifts the training stream; both generators are in ``state_dict``.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import torch

from concord.components.episode_buffer import Field, Scheme
from concord.components.prescriptions import make_prescription_set
from concord.controllers.base import Controller
from concord.envs.base import EnvObs
from concord.learners.dadc_backends import BACKENDS
from concord.modules.dadc_nets import DADCNet
from concord.registry import ACTION_SELECTORS, register_mac


@register_mac("dadc")
class DADCController(Controller):
    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        super().__init__(env_info, args, device)
        self.pset = make_prescription_set(args.dadc_prescriptions, args.env, env_info)
        p = self.pset
        self.naf = BACKENDS[args.dadc_backend].head == "naf"
        pred_dim = p.common_dim if args.dadc_ais_target == "z" else args.dadc_ais_dim
        self.agent = DADCNet(p.common_dim, p.n_params, p.discrete, p.n_options, args.dadc_ais, args.dadc_ais_dim,
                             args.dadc_predictor_hidden, pred_dim, args.dadc_trunk, args.dadc_actor_hidden,
                             args.dadc_critic_hidden, BACKENDS[args.dadc_backend].head, args.dadc_init_log_std,
                             args.dadc_naf_hidden, args.dadc_naf_action_bound, args.dadc_naf_noise_std).to(device)
        self.selector = ACTION_SELECTORS.get(args.action_selector)(args)
        self.gen = torch.Generator().manual_seed(int(args.seed))  # common randomness of the coordinator
        self.test_gen = torch.Generator().manual_seed(int(args.seed) + 1)
        self.last_action = torch.zeros(0, p.n_params)  # NAF's a_t of the latest ``prescribe`` (k, dθ)
        self.init_hidden(0)

    def batch_fields(self) -> Scheme:
        return {**self.selector.batch_fields(self.n_agents),
                "dadc_theta": Field((self.pset.n_params,), np.float32),  # θ_t (an option's one-hot if discrete)
                "dadc_log_prob": Field((1,), np.float32),  # log ψ(θ_t | X_t) at sampling time
                **({"dadc_action": Field((self.pset.n_params,), np.float32)}  # NAF's a_t (logits if discrete)
                   if self.naf and self.pset.discrete else {})}

    def init_hidden(self, n_envs: int) -> None:
        self.hidden = self.agent.init_ais(n_envs).to(self.device)  # (E, d) X_{t-1}
        self.theta_prev = torch.zeros(n_envs, self.pset.n_params, device=self.device)  # (E, dθ)

    def reset_hidden(self, env_ids: np.ndarray) -> None:
        self.hidden[env_ids] = 0.0
        self.theta_prev[env_ids] = 0.0

    @torch.no_grad()
    def prescribe(self, z: torch.Tensor, env_ids: np.ndarray, test_mode: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The coordinator on common information: Z_t (k, dz) -> θ_t (k, dθ), log ψ(θ_t | X_t) (k,)."""
        x, h = self.agent.ais_step(z.to(self.device), self.theta_prev[env_ids], self.hidden[env_ids])
        out = self.agent.policy(x)  # (k, n_options) log-probs or (k, dθ) means
        greedy = test_mode and self.args.dadc_test_greedy
        gen = self.test_gen if test_mode else self.gen
        if self.naf:
            theta, logp, self.last_action = self._naf_act(out, gen, test_mode, greedy)
        elif self.pset.discrete:
            if greedy:
                choice = out.argmax(-1)
            else:
                u = torch.rand(out.shape[0], 1, generator=gen).to(self.device)  # (k, 1)
                choice = (out.exp().cumsum(-1) < u).sum(-1).clamp(max=out.shape[-1] - 1)  # (k,)
            theta = self.pset.params(choice)
        else:
            noise = torch.randn(out.shape, generator=gen).to(self.device)  # (k, dθ)
            theta = out if greedy else out + self.agent.log_std.exp() * noise
        if not self.naf:
            logp, _ = self.agent.log_prob(x, theta)
        self.hidden[env_ids] = h
        self.theta_prev[env_ids] = theta
        return theta, logp

    def _naf_act(self, mu: torch.Tensor, gen: torch.Generator, test_mode: bool, greedy: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """NAF's coordinator: μ (k, dθ) -> θ_t (k, dθ), log density of a_t under N(μ, σ²) (k,), a_t (k, dθ)."""
        bound, std = self.args.dadc_naf_action_bound, self.agent.log_std.exp()  # (dθ,)
        noise = torch.randn(mu.shape, generator=gen).to(self.device)  # (k, dθ), drawn in test mode too
        a = mu if test_mode else (mu + std * noise).clamp(-bound, bound)
        logp = torch.distributions.Normal(mu, std).log_prob(a).sum(-1)  # (k,)
        if not self.pset.discrete:
            return a, logp, a
        probs = torch.softmax(a, dim=-1)  # (k, O) the randomised prescription
        if greedy:
            choice = probs.argmax(-1)
        else:
            u = torch.rand(a.shape[0], 1, generator=gen).to(self.device)  # (k, 1)
            choice = (probs.cumsum(-1) < u).sum(-1).clamp(max=a.shape[-1] - 1)  # (k,)
        return self.pset.params(choice), logp, a

    def select_actions(self, obs: EnvObs, last_actions: np.ndarray, env_ids: np.ndarray, t_env: int,
                       test_mode: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        o = torch.from_numpy(np.asarray(obs.obs, dtype=np.float32))  # (k, n_agents, obs_dim)
        theta, logp = self.prescribe(self.pset.common(o), env_ids, test_mode)
        local = self.pset.log_probs(theta.cpu(), o)  # (k, n_agents, n_actions) each agent's prescription
        actions, outputs = self.selector.select(local.numpy(), obs.avail_actions, t_env, test_mode)
        extra = {"dadc_action": self.last_action.cpu().numpy()} if self.naf and self.pset.discrete else {}
        return actions, {**outputs, "dadc_theta": theta.cpu().numpy(), "dadc_log_prob": logp.cpu().numpy()[:, None],
                         **extra}

    def forward_seq(self, batch: Mapping[str, torch.Tensor], agent: torch.nn.Module | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored episodes -> the agents' prescription log-probs (B, T, n, A) and the AIS X_t per agent (B, T, n, d)."""
        agent = agent or self.agent
        obs, theta = batch["obs"], batch["dadc_theta"]  # (B, T, n, o), (B, T, dθ)
        theta_prev = torch.cat([torch.zeros_like(theta[:, :1]), theta[:, :-1]], dim=1)
        x = agent.ais_unroll(self.pset.common(obs), theta_prev)  # (B, T, d)
        local = self.pset.log_probs(theta.cpu(), obs.cpu()).to(obs.device)
        return local, x.unsqueeze(2).expand(-1, -1, self.n_agents, -1)

    def stats(self) -> dict[str, float]:
        return self.selector.stats()

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.agent.state_dict(), "gen": self.gen.get_state(), "test_gen": self.test_gen.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state["net"])
        self.gen.set_state(state["gen"])
        self.test_gen.set_state(state["test_gen"])
