"""Approximate influence predictors (AIPs, Suau et al. 2022, App. E.1, App. I Table 4): Î_θ(u_t | d_t), one network
per agent with a shared trunk and one softmax head per influence source (eq. 25: the sources are independent given
the d-set), trained by cross-entropy on GS data (Algorithm 2).

- ``fnn``: an MLP on the current d-set (traffic: 2 layers of 128, Table 4); ``gru``: stacked GRUs over the d-set
  history, reset at each episode start (eq. 24; warehouse: 2 layers of 64, Table 4). The paper's sizes are used; the
  authors' code has one hidden layer (spec sheet §3 #1, #2). Binary sources (traffic) are 2-class softmax heads,
  identical in value to the code's sigmoid + binary CE.
- Inputs are rescaled from {0, 1} to {-1, 1} [C ``influence_network.py``].
- ``AIPFitter`` keeps one Adam across retrainings: the weights are fine-tuned, not re-initialised [C]. Each fit
  splits the new episodes 90/10 into train and test [C] and reports the cross-entropy of the joint u_t (summed over
  sources, nats per step) on the fresh data before training (``ce_fresh``: how well the AIP in use predicted the
  current joint policy's influence), on the test split after training (``ce_test``) and on the train split.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn


class AIP(nn.Module):
    def __init__(self, in_dim: int, n_sources: int, n_classes: int, arch: str, hidden: Sequence[int]) -> None:
        super().__init__()
        self.arch, self.n_sources, self.n_classes = arch, n_sources, n_classes
        sizes = [in_dim, *hidden]
        if arch == "fnn":
            self.trunk = nn.Sequential(*[m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        else:
            self.grus = nn.ModuleList(nn.GRU(a, b, batch_first=True) for a, b in zip(sizes, sizes[1:]))
        self.head = nn.Linear(sizes[-1], n_sources * n_classes)
        self.hidden = list(hidden)

    def init_hidden(self, n: int) -> list[torch.Tensor]:
        return [torch.zeros(1, n, h) for h in self.hidden] if self.arch == "gru" else []

    def forward(self, d: torch.Tensor, h: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``d (B, T, D)`` in {0, 1} -> logits ``(B, T, M, C)`` and the recurrent state after the last step."""
        x = 2.0 * d - 1.0
        new_h: list[torch.Tensor] = []
        if self.arch == "fnn":
            x = self.trunk(x)
        else:
            h = h if h is not None else self.init_hidden(d.shape[0])
            for gru, h0 in zip(self.grus, h):
                x, hn = gru(x, h0)
                new_h.append(hn)
        return self.head(x).view(*d.shape[:2], self.n_sources, self.n_classes), new_h


def cross_entropy(aip: AIP, d: torch.Tensor, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid steps of −log Î(u_t | d_t) = −Σ_m log P(u_t^m | d_t) (eq. 25); d (B, T, D), u (B, T, M)."""
    logits, _ = aip(d)  # (B, T, M, C)
    nll = -torch.log_softmax(logits, -1).gather(-1, u.unsqueeze(-1)).squeeze(-1).sum(-1)  # (B, T)
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)


class AIPPredictor:
    """An AIP as an IALS's ``InfluencePredictor``: batched inference with a hidden state per env."""

    def __init__(self, aip: AIP, num_envs: int) -> None:
        self.aip = aip
        self.h = aip.init_hidden(num_envs)  # per layer (1, E, H)

    def reset(self, env_ids: np.ndarray) -> None:
        for h in self.h:
            h[:, env_ids] = 0.0

    @torch.no_grad()
    def probs(self, dset: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        d = torch.from_numpy(np.ascontiguousarray(dset, dtype=np.float32)).unsqueeze(1)  # (k, 1, D)
        idx = torch.from_numpy(np.asarray(env_ids))
        logits, h = self.aip(d, [h[:, idx] for h in self.h] if self.h else None)
        for layer, hn in zip(self.h, h):
            layer[:, idx] = hn
        return torch.softmax(logits[:, 0].double(), -1).numpy()  # (k, M, C)


class AIPFitter:
    """Cross-entropy training of one AIP, fine-tuned across retrainings (one optimiser for the whole run)."""

    def __init__(self, aip: AIP, lr: float, batch_size: int, epochs: int) -> None:
        self.aip, self.batch_size, self.epochs = aip, int(batch_size), int(epochs)
        self.optimiser = torch.optim.Adam(aip.parameters(), lr=lr)
        self.n_fits = 0

    def fit(self, d: np.ndarray, u: np.ndarray, mask: np.ndarray) -> dict[str, float]:
        """Train on episodes ``d (B, T, D)``, ``u (B, T, M)``, ``mask (B, T)``; return the cross-entropies."""
        dt = torch.as_tensor(np.ascontiguousarray(d, dtype=np.float32))
        ut = torch.as_tensor(np.ascontiguousarray(u, dtype=np.int64))
        mt = torch.as_tensor(np.ascontiguousarray(mask, dtype=np.float32))
        with torch.no_grad():
            ce_fresh = cross_entropy(self.aip, dt, ut, mt).item()
        order = torch.randperm(len(dt))
        n_test = len(dt) // 10 if len(dt) >= 10 else (1 if len(dt) >= 2 else 0)
        test, train = order[:n_test], order[n_test:]
        if self.aip.arch == "fnn":  # minibatches of steps
            keep = mt[train].reshape(-1) > 0
            x = dt[train].reshape(-1, 1, dt.shape[-1])[keep]  # (S, 1, D)
            y = ut[train].reshape(-1, 1, ut.shape[-1])[keep]  # (S, 1, M)
            m = torch.ones(len(x), 1)
        else:  # minibatches of whole episodes
            x, y, m = dt[train], ut[train], mt[train]
        for _ in range(self.epochs):
            perm = torch.randperm(len(x))
            for idx in torch.split(perm, self.batch_size):
                loss = cross_entropy(self.aip, x[idx], y[idx], m[idx])
                self.optimiser.zero_grad(set_to_none=True)
                loss.backward()
                self.optimiser.step()
        self.n_fits += 1
        with torch.no_grad():
            ce_train = cross_entropy(self.aip, dt[train], ut[train], mt[train]).item()
            ce_test = cross_entropy(self.aip, dt[test], ut[test], mt[test]).item() if n_test else float("nan")
        return {"ce_fresh": ce_fresh, "ce_train": ce_train, "ce_test": ce_test}

    def state_dict(self) -> dict[str, Any]:
        return {"aip": self.aip.state_dict(), "optimiser": self.optimiser.state_dict(), "n_fits": self.n_fits}

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self.aip.load_state_dict(s["aip"])
        self.optimiser.load_state_dict(s["optimiser"])
        self.n_fits = s["n_fits"]
