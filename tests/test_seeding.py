"""Per-env seeds from numpy.random.SeedSequence (concord.envs.seeding): distinct across run seeds, deterministic,
and used by every way a batch is built (serial, subprocess, natively batched)."""
from __future__ import annotations

import numpy as np
import pytest

import tests.chain_env  # noqa: F401  (registers test_chain)
from concord.envs.coordination_game import CoordinationGameEnv
from concord.envs.factory import make_vec_env
from concord.envs.seeding import batch_seeds, env_seed, env_seeds, restart_seed

PLUGINS = ("tests.chain_env",)


def test_runs_with_neighbouring_seeds_share_no_env_seed() -> None:
    for n in range(1, 17):
        a, b = env_seeds(1, n), env_seeds(2, n)
        assert len(set(a)) == len(set(b)) == n  # distinct within a run
        assert not set(a) & set(b), n  # and across runs 1 and 2 (seed + i shared n - 1 of them)


def test_env_seeds_are_deterministic_32_bit_and_from_seed_sequence_spawn() -> None:
    seeds = env_seeds(7, 16)
    assert seeds == env_seeds(7, 16)
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    spawned = [int(c.generate_state(1, np.uint32)[0]) for c in np.random.SeedSequence(7).spawn(16)]
    assert seeds == spawned
    assert env_seeds(7, 5) == seeds[:5]  # env i's seed does not depend on the batch size
    assert [env_seed(7, i) for i in range(16)] == seeds
    assert env_seeds(-3, 4) == env_seeds(-3, 4) != env_seeds(3, 4)  # negative run seeds work too


def test_restart_seeds_are_fresh_and_deterministic() -> None:
    assert [restart_seed(5, i, 0) for i in range(4)] == env_seeds(5, 4)
    restarts = [restart_seed(5, i, r) for i in range(4) for r in range(1, 6)]
    assert restarts == [restart_seed(5, i, r) for i in range(4) for r in range(1, 6)]
    assert len(set(restarts) | set(env_seeds(5, 4))) == len(restarts) + 4


def test_batch_seeds_takes_a_run_seed_or_the_env_seeds() -> None:
    assert batch_seeds(3, 4) == env_seeds(3, 4)
    assert batch_seeds([11, 12], 2) == [11, 12]
    assert len(batch_seeds(None, 3)) == 3
    with pytest.raises(ValueError, match="2 env seeds given for a batch of 3"):
        batch_seeds([1, 2], 3)


def _noises(vec, n: int) -> list[float]:
    """The chain env draws one U[0,1) per reset and shows it as obs feature 2."""
    return vec.reset(range(n)).obs[:, 0, 2].tolist()


def test_serial_batch_gets_the_env_seeds_and_runs_share_no_stream() -> None:
    n = 8
    a = make_vec_env("test_chain", {"limit": 3}, n, seed=1, subprocess=False, plugins=PLUGINS)
    b = make_vec_env("test_chain", {"limit": 3}, n, seed=2, subprocess=False, plugins=PLUGINS)
    na, nb = _noises(a, n), _noises(b, n)
    assert na == [float(np.float32(np.random.default_rng(s).random())) for s in env_seeds(1, n)]
    assert len(set(na)) == n and not set(na) & set(nb)  # with seed + i, 7 of the 8 envs would coincide


def test_natively_batched_env_gets_the_env_seeds_and_runs_share_no_stream() -> None:
    n = 8
    a, b = CoordinationGameEnv(num_envs=n, seed=1), CoordinationGameEnv(num_envs=n, seed=2)
    assert a.rngs.seeds == env_seeds(1, n)
    ua, ub = a.rngs.uniform(range(n), 16), b.rngs.uniform(range(n), 16)  # (n, 16) each
    assert not any(np.array_equal(x, y) for x in ua for y in ub)
    # env i of a batch streams as a 1-env batch given env i's own seed
    one = CoordinationGameEnv(num_envs=1, seed=[env_seeds(1, n)[3]])
    np.testing.assert_array_equal(one.rngs.uniform([0], 16)[0], ua[3])


def test_subprocess_workers_get_the_env_seeds_and_restart_seeds() -> None:
    vec = make_vec_env("test_chain", {"limit": 3}, 2, seed=5, subprocess=True, plugins=PLUGINS)
    try:
        assert vec.seeds == env_seeds(5, 2)
        assert _noises(vec, 2) == [float(np.float32(np.random.default_rng(s).random())) for s in env_seeds(5, 2)]
        vec.restart(1, "a test restart")
        fresh = vec.reset([1]).obs[0, 0, 2]
        assert fresh == np.float32(np.random.default_rng(restart_seed(5, 1, 1)).random())
    finally:
        vec.close()
