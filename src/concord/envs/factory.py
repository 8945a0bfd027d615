"""Building the ``VecEnv`` a runner steps, from the config."""
from __future__ import annotations

import functools
from typing import Any, Mapping

from concord.envs.base import MultiAgentEnv, SerialVecEnv, VecEnv
from concord.envs.seeding import env_seeds
from concord.envs.subproc import SubprocVecEnv
from concord.registry import ENVS, load_plugins


def env_kwargs(env_args: Mapping[str, Any]) -> dict[str, Any]:
    """The env's constructor arguments: ``state_last_action`` is the framework's, not the env's."""
    return {k: v for k, v in env_args.items() if k != "state_last_action"}


def make_single_env(name: str, env_args: Mapping[str, Any], plugins: tuple[str, ...], seed: int) -> MultiAgentEnv:
    """Top-level (picklable) constructor used inside worker processes."""
    load_plugins(plugins)
    return ENVS.get(name)(seed=seed, **env_kwargs(env_args))


def make_vec_env(name: str, env_args: Mapping[str, Any], num_envs: int, seed: int, subprocess: bool,
                 plugins: tuple[str, ...] = (), step_timeout: float = 0.0, max_failures: int | None = None) -> VecEnv:
    """A natively batched env is built as one object; single envs are lifted in-process or one per subprocess.

    ``seed`` is the run seed; env ``i`` gets ``seeding.env_seeds(seed, num_envs)[i]`` on every path (a natively
    batched env expands its int seed itself). ``step_timeout``/``max_failures``: see ``SubprocVecEnv``."""
    cls = ENVS.get(name)
    if isinstance(cls, type) and issubclass(cls, VecEnv):
        return cls(num_envs=num_envs, seed=seed, **env_kwargs(env_args))
    if subprocess:
        return SubprocVecEnv(functools.partial(make_single_env, name, dict(env_args), tuple(plugins)), num_envs, seed,
                             step_timeout, max_failures)
    return SerialVecEnv([cls(seed=s, **env_kwargs(env_args)) for s in env_seeds(seed, num_envs)])
