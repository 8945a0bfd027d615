"""Exploration schedules: a pure function of the env step, so a resumed run continues exactly."""
from __future__ import annotations


class LinearSchedule:
    """Linear interpolation from ``start`` to ``finish`` over ``duration`` env steps, then constant."""

    def __init__(self, start: float, finish: float, duration: int) -> None:
        self.start, self.finish, self.duration = start, finish, max(duration, 1)

    def __call__(self, t: int) -> float:
        frac = min(max(t, 0) / self.duration, 1.0)
        return self.start + frac * (self.finish - self.start)
