"""Running mean and variance (Chan et al.'s parallel update), e.g. to standardise rewards."""
from __future__ import annotations

from typing import Any

import torch


class RunningMeanStd:
    def __init__(self, eps: float = 1e-4) -> None:
        self.mean = 0.0
        self.var = 1.0
        self.count = eps

    def update(self, x: torch.Tensor) -> None:
        if x.numel() == 0:
            return
        b_mean, b_var, b_count = x.mean().item(), x.var(unbiased=False).item(), x.numel()
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean += delta * b_count / total
        self.var = (self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total) / total
        self.count = total

    def standardise(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Fold the valid entries of ``x`` (``valid`` > 0) into the statistics, then return (x − mean) / std
        (epymarl's ``standardise_rewards``; unlike epymarl, padded steps do not enter the statistics)."""
        self.update(x[valid > 0])
        return (x - self.mean) / (self.var ** 0.5 + 1e-8)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.mean, self.var, self.count = s["mean"], s["var"], s["count"]
