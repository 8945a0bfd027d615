"""Checks shared by the tests of the natively batched numpy domains and of every env's yaml.

- ``check_batched_equals_single``: a batch of ``n`` envs stepped on changing subsets returns, row for row,
  what ``n`` single envs (``num_envs=1``) built with env ``i``'s own seed (``seed=[env_seeds(seed, n)[i]]``,
  ``numpy_vec``'s seeding convention) return, through episode ends and resets;
- ``check_seeding_and_rng_round_trip``: the same seed gives the same trajectory, another seed another one,
  and ``get_rng_state``/``set_rng_state`` replay the random streams exactly (also into an env built with
  another seed);
- ``check_yaml_declares_constructor_defaults``: an env yaml declares every constructor keyword with its
  default.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from concord.envs.base import EnvObs, StepResult, VecEnv
from concord.envs.seeding import Seed, env_seeds

MakeEnv = Callable[[int, Seed], VecEnv]  # (num_envs, seed: a run seed or the envs' own seeds) -> env
Policy = Callable[[np.random.Generator, np.ndarray], np.ndarray]  # (rng, avail (k, N, A) bool) -> actions (k, N)
PickIds = Callable[[int, np.random.Generator, int], np.ndarray]  # (t, rng, num_envs) -> env ids to step at t


def uniform_legal(rng: np.random.Generator, avail: np.ndarray) -> np.ndarray:
    """A uniformly drawn action per agent, replaced by action 0 (always available here) where unavailable."""
    a = rng.integers(0, avail.shape[-1], avail.shape[:-1])
    return np.where(np.take_along_axis(avail, a[..., None], -1)[..., 0], a, 0)


def random_subset(t: int, rng: np.random.Generator, n_envs: int) -> np.ndarray:
    """Each env stepped with probability 0.6: the others must stay untouched."""
    return np.flatnonzero(rng.random(n_envs) < 0.6)


def assert_obs_rows_equal(a: EnvObs, j: int, b: EnvObs, i: int = 0) -> None:
    """Row ``j`` of ``a`` equals row ``i`` of ``b``: observations, state, available actions and extras."""
    np.testing.assert_array_equal(a.obs[j], b.obs[i])
    np.testing.assert_array_equal(a.state[j], b.state[i])
    np.testing.assert_array_equal(a.avail_actions[j], b.avail_actions[i])
    assert a.extras.keys() == b.extras.keys()
    for key in a.extras:
        np.testing.assert_array_equal(a.extras[key][j], b.extras[key][i])


def assert_step_rows_equal(a: StepResult, j: int, b: StepResult, i: int = 0) -> None:
    """Row ``j`` of step result ``a`` equals row ``i`` of ``b``, infos included."""
    assert_obs_rows_equal(a.obs, j, b.obs, i)
    assert (a.reward[j], a.terminated[j], a.truncated[j]) == (b.reward[i], b.terminated[i], b.truncated[i])
    assert a.infos[j] == b.infos[i]


def check_batched_equals_single(
    make: MakeEnv,
    n_envs: int,
    seed: int,
    steps: int,
    policy: Policy = uniform_legal,
    pick_ids: PickIds = random_subset,
    action_seed: int = 0,
    untouched: Callable[[VecEnv, int], Sequence[np.ndarray]] | None = None,
) -> int:
    """Step ``make(n_envs, seed)`` and ``make(1, [env_seeds(seed, n_envs)[i]])`` side by side; return how many
    episodes ended.

    At step ``t`` the envs ``pick_ids(t, rng, n_envs)`` are stepped with ``policy(rng, their avail)`` (one
    generator seeded ``action_seed`` draws both); each row must equal its single env's, and an ended episode is
    reset in both. ``untouched(env, i)`` (optional) names arrays of env ``i`` that must not change while it
    sits out a step.
    """
    batch = make(n_envs, seed)
    singles = [make(1, [s]) for s in env_seeds(seed, n_envs)]
    first = batch.reset(range(n_envs))
    for i, single in enumerate(singles):
        assert_obs_rows_equal(first, i, single.reset([0]))
    avail = first.avail_actions.copy()  # (n_envs, N, A) what each env allows now
    rng = np.random.default_rng(action_seed)
    ends = 0
    for t in range(steps):
        ids = np.asarray(pick_ids(t, rng, n_envs), dtype=np.int64)
        resting = [i for i in range(n_envs) if i not in ids]
        before = {i: [np.copy(x) for x in untouched(batch, i)] for i in resting} if untouched else {}
        acts = policy(rng, avail[ids])
        res = batch.step(ids, acts)
        for i, arrays in before.items():
            for x, y in zip(arrays, untouched(batch, i)):
                np.testing.assert_array_equal(x, y)
        for j, i in enumerate(ids):
            assert_step_rows_equal(res, j, singles[i].step([0], acts[j : j + 1]))
            avail[i] = res.obs.avail_actions[j]
        done = ids[res.terminated | res.truncated]
        if len(done):
            ends += len(done)
            again = batch.reset(done)
            for j, i in enumerate(done):
                assert_obs_rows_equal(again, j, singles[i].reset([0]))
                avail[i] = again.avail_actions[j]
    return ends


def rollout(env: VecEnv, steps: int, policy: Policy = uniform_legal, action_seed: int = 0) -> list[tuple[Any, ...]]:
    """Reset every env of ``env`` and step them all ``steps`` times (resetting ended episodes); what they returned."""
    rng = np.random.default_rng(action_seed)
    ids = np.arange(env.num_envs)
    obs = env.reset(ids)
    out: list[tuple[Any, ...]] = [(obs.obs.copy(), obs.state.copy())]
    for _ in range(steps):
        res = env.step(ids, policy(rng, obs.avail_actions))
        out.append((res.obs.obs.copy(), res.obs.state.copy(), res.obs.avail_actions.copy(),
                    {k: v.copy() for k, v in res.obs.extras.items()}, res.reward.copy(), res.terminated.copy(),
                    res.truncated.copy(), res.infos))
        obs = res.obs
        done = ids[res.terminated | res.truncated]
        if len(done):
            obs.avail_actions[done] = env.reset(done).avail_actions
    return out


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """Two rollouts returned exactly the same things."""
    def equal(x: Any, y: Any) -> bool:
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
        if isinstance(x, np.ndarray):
            return np.array_equal(x, y)
        return x == y

    return len(a) == len(b) and all(len(x) == len(y) and all(map(equal, x, y)) for x, y in zip(a, b))


def check_seeding_and_rng_round_trip(make: MakeEnv, steps: int, policy: Policy = uniform_legal,
                                     seed: int = 42, num_envs: int = 2) -> None:
    """Same seed, same trajectory; another seed, another one; restoring the rng state replays the streams."""
    a = rollout(make(num_envs, seed), steps, policy)
    assert same(a, rollout(make(num_envs, seed), steps, policy))
    assert not same(a, rollout(make(num_envs, seed + 1), steps, policy))
    env = make(num_envs, seed)
    saved = env.get_rng_state()
    first = rollout(env, steps, policy)
    assert not same(first, rollout(env, steps, policy))  # the streams moved on
    env.set_rng_state(saved)
    assert same(first, rollout(env, steps, policy))
    other = make(num_envs, seed + 57)  # the state, not the seed, decides what an env draws
    other.set_rng_state(saved)
    assert same(first, rollout(other, steps, policy))


def _norm(v: object) -> object:
    return [_norm(x) for x in v] if isinstance(v, (list, tuple)) else v


def check_yaml_declares_constructor_defaults(path: str | Path, env_cls: type,
                                             framework_args: Sequence[str] = ("num_envs", "seed")) -> dict[str, Any]:
    """The yaml at ``path`` declares every constructor keyword of ``env_cls`` (but the framework's) with its
    default (lists and tuples alike); returns the parsed yaml for the env's own checks."""
    cfg = yaml.safe_load(Path(path).read_text())
    params = inspect.signature(env_cls).parameters
    defaults = {k: p.default for k, p in params.items() if k not in framework_args}
    assert set(cfg["env_args"]) == set(defaults)
    for key, value in cfg["env_args"].items():
        assert _norm(value) == _norm(defaults[key]), key
    return cfg
