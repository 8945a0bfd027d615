"""The seeds of a run's envs, drawn from ``numpy.random.SeedSequence``.

A run seeded ``s`` with ``n`` envs gives env ``i`` the seed ``env_seeds(s, n)[i]``: 32 bits of the state of
``SeedSequence(s).spawn(n)[i]`` (the child with spawn key ``(i,)``). Unlike ``s + i``, runs with nearby seeds
share no env streams (with ``s + i``, runs 1 and 2 shared all but one). The seeds are 32-bit because every
consumer takes them: ``np.random.seed``, jax's ``PRNGKey``, StarCraft II's ``random_seed`` (a uint32).
Env ``i``'s seed depends on ``s`` and ``i`` only, not on ``n``: ``env_seeds(s, m)`` is a prefix of
``env_seeds(s, n)`` for ``m <= n``.

A restarted worker (``SubprocVecEnv``) gets ``restart_seed(s, i, r)`` at its ``r``-th restart: 32 bits of
``SeedSequence(s, spawn_key=(i, r))``, a fresh stream for each restart; ``restart_seed(s, i, 0)`` is env
``i``'s first seed.

Negative run seeds are taken modulo 2**64 (``SeedSequence`` wants non-negative entropy).
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

# What a batched env's constructor accepts as ``seed``: a run seed (expanded by ``env_seeds``), the seeds of
# its envs themselves (one per env), or ``None`` (a run seed from OS entropy).
Seed = Union[int, Sequence[int], None]


def _entropy(seed: int) -> int:
    seed = int(seed)
    return seed if seed >= 0 else seed % 2**64


def _seed_of(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, np.uint32)[0])


def env_seed(seed: int, env_index: int) -> int:
    """The seed of env ``env_index`` of a run seeded ``seed`` (``env_seeds(seed, n)[env_index]`` for any n)."""
    return _seed_of(np.random.SeedSequence(_entropy(seed), spawn_key=(int(env_index),)))


def env_seeds(seed: int, n: int) -> list[int]:
    """The 32-bit seeds of the ``n`` envs of a run seeded ``seed``: from ``SeedSequence(seed).spawn(n)``."""
    return [env_seed(seed, i) for i in range(int(n))]


def restart_seed(seed: int, env_index: int, restart: int) -> int:
    """The seed of env ``env_index`` of a run seeded ``seed`` after its ``restart``-th worker restart."""
    if restart == 0:
        return env_seed(seed, env_index)
    return _seed_of(np.random.SeedSequence(_entropy(seed), spawn_key=(int(env_index), int(restart))))


def batch_seeds(seed: Seed, num_envs: int) -> list[int]:
    """The per-env seeds of a natively batched env built with ``seed`` (see ``Seed``)."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, (int, np.integer)):
        return env_seeds(int(seed), num_envs)
    seeds = [int(s) for s in seed]
    if len(seeds) != num_envs:
        raise ValueError(f"{len(seeds)} env seeds given for a batch of {num_envs} envs")
    return seeds
