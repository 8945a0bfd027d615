"""The DAG-density annealing of BN-DAG policies (bn_dag_policies.md §7.4.4): a pure function of the env step.

The regulariser α|ρ(G) − η| (§6.3) drives the DAG density ρ towards the threshold η. Annealing holds η = η₀ for
the first a·t_max steps (dependencies are learnt to be useful), lowers η from η₀ to 0 uniformly in ``eta_steps``
steps between a·t_max and b·t_max, and raises α from α₀ to α₁ uniformly in ``alpha_steps`` steps between b·t_max
and c·t_max, so that the final policy runs with the empty DAG (decentralised execution).
"""
from __future__ import annotations

import math


def staircase(t: float, start_t: float, end_t: float, v0: float, v1: float, steps: int) -> float:
    """``v0`` before ``start_t``, ``v1`` from ``end_t`` on, and in between ``steps`` equal jumps from v0 to v1
    (the k-th jump once a fraction k/steps of the interval has passed)."""
    if t < start_t:
        return v0
    if t >= end_t or end_t <= start_t:
        return v1
    k = math.floor((t - start_t) / (end_t - start_t) * steps)
    return v0 + (v1 - v0) * min(k, steps) / steps


class DensityAnneal:
    """(α, η) at env step t: ``mode`` anneal (§7.4.4), constant (α₀, η₀ throughout) or none (α = 0, §7.4.1–7.4.3)."""

    def __init__(self, mode: str, t_max: int, a: float, b: float, c: float, eta0: float, alpha0: float,
                 alpha1: float, eta_steps: int, alpha_steps: int) -> None:
        if not 0.0 <= a <= b <= c <= 1.0:
            from concord.errors import ConfigError

            raise ConfigError(f"bn_dag: the annealing fractions need 0 <= a <= b <= c <= 1, got {a}, {b}, {c}")
        self.mode, self.t_max = mode, t_max
        self.a, self.b, self.c = a * t_max, b * t_max, c * t_max
        self.eta0, self.alpha0, self.alpha1 = eta0, alpha0, alpha1
        self.eta_steps, self.alpha_steps = eta_steps, alpha_steps

    def __call__(self, t_env: int) -> tuple[float, float]:
        """(α, η) at ``t_env``."""
        if self.mode == "none":
            return 0.0, self.eta0
        if self.mode == "constant":
            return self.alpha0, self.eta0
        eta = staircase(t_env, self.a, self.b, self.eta0, 0.0, self.eta_steps)
        alpha = staircase(t_env, self.b, self.c, self.alpha0, self.alpha1, self.alpha_steps)
        return alpha, eta
