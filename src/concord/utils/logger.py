"""Statistics: kept in memory, written to tensorboardX and sacred, summarised on the console via logging."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Mapping

import numpy as np

log = logging.getLogger("concord")


class Logger:
    """Collects ``(t_env, value)`` series per key and forwards them to tensorboardX and sacred."""

    def __init__(self, tb_dir: str | None = None, sacred_run: Any = None) -> None:
        self.stats: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.sacred_run = sacred_run
        self.tb = None
        if tb_dir:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(tb_dir)

    def log_stat(self, key: str, value: float, t: int) -> None:
        value = float(value)
        self.stats[key].append((t, value))
        if self.tb is not None:
            self.tb.add_scalar(key, value, t)
        if self.sacred_run is not None:
            self.sacred_run.log_scalar(key, value, t)

    def log_stats(self, values: Mapping[str, float], t: int) -> None:
        for k, v in values.items():
            self.log_stat(k, v, t)

    def latest(self, key: str) -> float | None:
        series = self.stats.get(key)
        return series[-1][1] if series else None

    def summarise(self, t_env: int, episode: int) -> None:
        """One console block with the latest logged value of every statistic, under its own name (learner ones
        are already averaged since the previous log line); whole numbers print as integers."""
        lines = [f"t_env: {t_env}  episode: {episode}"]
        for k in sorted(self.stats):
            lines.append(f"  {k:<28s} {format_value(self.stats[k][-1][1])}")
        log.info("\n".join(lines))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def format_value(value: float) -> str:
    """``3`` for a whole number (counters such as ``env_failures``), else four decimals (``0.1250``)."""
    if np.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4f}"
