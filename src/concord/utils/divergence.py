"""Detecting a diverged update (a non-finite loss, gradient norm or parameter), for every learner family.

Every learner's ``update`` returns scalar statistics with ``loss`` and gradient norms (``grad_norm``,
``critic_grad_norm``, ...); the experiment checks them and the learner's parameters after each update, so that a
diverged run stops (``on_nonfinite: stop``) before any checkpoint of its weights is written, or the update is
undone (``skip``).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch


class DivergenceError(RuntimeError):
    """An update produced non-finite values (``on_nonfinite: stop``); reported as one line."""


def is_guarded(key: str) -> bool:
    """The statistics whose non-finite value means the update diverged: losses and gradient norms."""
    return key == "loss" or key.endswith("_loss") or "grad_norm" in key


def nonfinite_stats(stats: Mapping[str, float]) -> dict[str, float]:
    """The guarded statistics of one update that are NaN or infinite."""
    return {k: float(v) for k, v in stats.items() if is_guarded(k) and not math.isfinite(float(v))}


def nonfinite_parameters(networks: Mapping[str, torch.nn.Module]) -> list[str]:
    """``["agent.fc1.weight", ...]``: parameters holding a NaN or an infinity."""
    bad = []
    for net_name, net in networks.items():
        for p_name, p in net.named_parameters():
            if not bool(torch.isfinite(p).all()):
                bad.append(f"{net_name}.{p_name}")
    return bad


def describe(stats: Mapping[str, float], params: list[str]) -> str:
    """``"loss=inf, grad_norm=nan; non-finite parameters: agent.fc1.weight (+3 more)"``."""
    parts = []
    if stats:
        parts.append(", ".join(f"{k}={v}" for k, v in sorted(stats.items())))
    if params:
        more = f" (+{len(params) - 1} more)" if len(params) > 1 else ""
        parts.append(f"non-finite parameters: {params[0]}{more}")
    return "; ".join(parts)
