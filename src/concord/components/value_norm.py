"""Value-target normalisation: ``ValueNorm`` (running statistics beside a critic) and ``PopArt`` (a critic head).

``ValueNorm`` follows MAPPO's ``utils/valuenorm.py`` (Yu et al. 2022) when given ``beta``, whose ``beta`` is the
*decay* (weight of the old statistics, e.g. 0.99999). ``PopArt`` follows van Hasselt et al. 2016, whose ``beta``
is the *step size* (weight of the new batch, e.g. 3e-4). Both standardise each of their heads separately.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def _rows(x: torch.Tensor, width: int) -> torch.Tensor:
    """``x`` (..., width) as float64 rows (N, width) on the CPU; with width 1 every entry is a row."""
    return x.detach().to("cpu", torch.float64).reshape(-1, width)  # (N, width)


class ValueNorm:
    """Running mean/std of value targets, per head (``shape`` = K) or shared (``shape`` = 1).

    ``beta=None`` keeps the exact mean and variance of all data seen (Chan et al.'s parallel update in float64).
    A float ``beta`` keeps MAPPO's debiased exponential moving averages of the mean and mean square: each update
    decays them by ``beta`` (by ``beta`` ** rows with ``per_element_update``), and the debiasing term, floored at
    ``eps``, removes the bias towards their zero start. The variance used for scaling is floored at ``min_var``
    (MAPPO's 1e-2), so near-constant targets are not blown up. Before any update it normalises with mean 0, std 1.
    """

    def __init__(self, shape: int = 1, beta: float | None = None, eps: float = 1e-5, *,
                 per_element_update: bool = False, min_var: float = 1e-2) -> None:
        self.shape, self.beta, self.eps = shape, beta, eps
        self.per_element_update, self.min_var = per_element_update, min_var
        zeros = torch.zeros(shape, dtype=torch.float64)  # (shape,)
        if beta is None:
            self.stats = {"mean": zeros.clone(), "m2": zeros.clone(), "count": 0}
        else:
            self.stats = {"running_mean": zeros.clone(), "running_mean_sq": zeros.clone(),
                          "debiasing_term": torch.zeros((), dtype=torch.float64)}

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add targets ``x`` (..., shape); masked callers pass only the valid entries."""
        rows = _rows(x, self.shape)  # (N, shape)
        n = rows.shape[0]
        if n == 0:
            return
        b_mean = rows.mean(0)  # (shape,)
        s = self.stats
        if self.beta is None:
            delta = b_mean - s["mean"]  # (shape,)
            total = s["count"] + n
            b_m2 = ((rows - b_mean) ** 2).sum(0)  # (shape,)
            s["m2"] = s["m2"] + b_m2 + delta**2 * s["count"] * n / total
            s["mean"] = s["mean"] + delta * n / total
            s["count"] = total
            return
        w = self.beta**n if self.per_element_update else self.beta
        s["running_mean"] = w * s["running_mean"] + (1.0 - w) * b_mean
        s["running_mean_sq"] = w * s["running_mean_sq"] + (1.0 - w) * (rows**2).mean(0)
        s["debiasing_term"] = w * s["debiasing_term"] + (1.0 - w)

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current (debiased) mean and variance, float64 (shape,), before the ``min_var`` floor."""
        s = self.stats
        if self.beta is None:
            if s["count"] == 0:
                return s["mean"].clone(), torch.ones_like(s["mean"])
            return s["mean"].clone(), s["m2"] / s["count"]
        if s["debiasing_term"] == 0:
            return s["running_mean"].clone(), torch.ones_like(s["running_mean"])
        term = s["debiasing_term"].clamp(min=self.eps)
        mean = s["running_mean"] / term  # (shape,)
        return mean, s["running_mean_sq"] / term - mean**2

    def _mean_std(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self.mean_var()
        std = var.clamp(min=self.min_var).sqrt()  # (shape,)
        return mean.to(like.device, like.dtype), std.to(like.device, like.dtype)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x − mean) / std for ``x`` (..., shape)."""
        mean, std = self._mean_std(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """x · std + mean for normalised ``x`` (..., shape)."""
        mean, std = self._mean_std(x)
        return x * std + mean

    def state_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "beta": self.beta,
                **{k: v.clone() if torch.is_tensor(v) else v for k, v in self.stats.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state["shape"], state["beta"]) != (self.shape, self.beta):
            raise ValueError(f"ValueNorm state has shape={state['shape']}, beta={state['beta']}; "
                             f"this one has shape={self.shape}, beta={self.beta}")
        self.stats = {k: state[k].clone().to(torch.float64) if torch.is_tensor(state[k]) else state[k]
                      for k in self.stats}


class PopArt(nn.Module):
    """A final linear layer with Pop-Art target normalisation (van Hasselt et al. 2016).

    ``forward`` gives normalised values; ``denormalize(forward(x))`` are values in target units. ``update``
    moves the statistics by exponential moving averages of the batch mean and mean square with step size ``beta``,
    *debiased* (divided by 1 − (1 − β)^n after n updates, as MAPPO's PopArt does), so the first update already
    gives the batch statistics rather than dragging from mean 0; with no update yet the mean is 0 and std 1. It
    then rescales weight and bias in place so that the denormalised outputs are unchanged ("preserving outputs
    precisely"); optimiser moments are not adjusted. σ is floored at ``eps``. Statistics are float64 buffers.
    """

    def __init__(self, in_features: int, out_features: int = 1, beta: float = 3e-4, eps: float = 1e-4) -> None:
        super().__init__()
        self.in_features, self.out_features, self.beta, self.eps = in_features, out_features, beta, eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))  # (out, in)
        self.bias = nn.Parameter(torch.empty(out_features))  # (out,)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        nn.init.uniform_(self.bias, -bound, bound)
        self.register_buffer("running_mean", torch.zeros(out_features, dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros(out_features, dtype=torch.float64))
        self.register_buffer("debiasing_term", torch.zeros((), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised values (..., out_features) from features ``x`` (..., in_features)."""
        return F.linear(x, self.weight, self.bias)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The debiased mean and σ of the targets, (out_features,) each."""
        started = self.debiasing_term > 0
        term = torch.where(started, self.debiasing_term, torch.ones_like(self.debiasing_term))
        mean = self.running_mean / term  # (out,)
        mean_sq = torch.where(started, self.running_mean_sq / term, torch.ones_like(mean))  # (out,)
        return mean, (mean_sq - mean**2).clamp(min=self.eps**2).sqrt()

    @torch.no_grad()
    def update(self, targets: torch.Tensor) -> None:
        """Fold targets (..., out_features) (valid entries only) into the statistics, preserving outputs."""
        rows = targets.detach().to(self.running_mean).reshape(-1, self.out_features)  # (N, out)
        if rows.shape[0] == 0:
            return
        old_mean, old_std = self.mean_std()
        self.running_mean.mul_(1.0 - self.beta).add_(self.beta * rows.mean(0))
        self.running_mean_sq.mul_(1.0 - self.beta).add_(self.beta * (rows**2).mean(0))
        self.debiasing_term.mul_(1.0 - self.beta).add_(self.beta)
        new_mean, new_std = self.mean_std()
        scale = old_std / new_std  # (out,)
        self.weight.copy_(self.weight.to(scale) * scale.unsqueeze(-1))
        self.bias.copy_((old_std * self.bias.to(scale) + old_mean - new_mean) / new_std)

    def normalize(self, targets: torch.Tensor) -> torch.Tensor:
        """(targets − mean) / σ for ``targets`` (..., out_features)."""
        mean, std = self.mean_std()
        return (targets - mean.to(targets)) / std.to(targets)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        """σ · y + mean for normalised ``y`` (..., out_features)."""
        mean, std = self.mean_std()
        return y * std.to(y) + mean.to(y)
