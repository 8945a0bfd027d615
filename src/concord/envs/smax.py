"""SMAX: SMAC-like StarCraft micromanagement without StarCraft II (JaxMARL 0.2.0), natively batched.

Wraps JaxMARL's ``HeuristicEnemySMAX`` (Rutherford et al., "JaxMARL", 2024, §4 SMAX): the learners
control the allied units of a SMAC scenario, the enemies follow JaxMARL's scripted heuristic. All
``num_envs`` envs live in one batched jax state and are advanced by ONE compiled function per call
(``jax.vmap`` of step + observation + state + available actions under ``jax.jit``): one dispatch and
one device->host copy per step. Envs not named in ``env_ids`` are kept unchanged by a ``jnp.where``
on an active mask inside that function, and their random keys do not advance.

Differences from SMAC (StarCraft II) that matter when comparing results:
- sizes: obs_dim = 13 * (n_allies - 1 + n_enemies) + 10 (``unit_list``; 13 * 64 + 10 = 842 for ``conic``),
  state_dim = 12 * (n_allies + n_enemies): per unit health fraction, absolute (x, y) in map units
  (0..32), weapon cooldown and a 6-way unit-type one-hot, then every unit's team and raw type index.
  SMAC's sizes (e.g. 30 / 48 on 3m) and feature scaling differ, so networks do not transfer.
- actions: 0-3 move, 4 stop, 5.. attack enemy j; n_actions = n_enemies + 5 (SMAC: n_enemies + 6 with
  a no-op). A dead agent has only "stop" (4) available, so avail actions are never empty.
- reward: SMAX returns one reward per agent, but every ally gets the same team reward (damage
  dealt as a fraction of the enemy team's total health per step, + ``won_battle_bonus`` on a win);
  we return it once per env. Its episode total is at most 1 + won_battle_bonus (SMAC scales to 20).
- episode end: one side fully dead -> ``terminated``; ``max_steps`` (SMAX default 100, exposed as
  ``episode_limit``) reached first -> ``truncated``. A win needs every enemy dead and an ally alive
  (both sides dying in the same step is a draw, which SC2 cannot produce). The last step's info
  holds ``battle_won`` (0/1), ``dead_allies`` and ``dead_enemies``.
- extras: ``positions`` (n_agents, 2), the allies' absolute map coordinates (kept when dead).

Seeding (``numpy_vec``'s convention, ``concord.envs.seeding``): an int ``seed`` is the run seed and env i's
jax key is ``PRNGKey(env_seeds(seed, num_envs)[i])`` (32-bit seeds, as jax wants); a sequence of ``num_envs``
ints gives the envs' seeds themselves (taken mod 2**32), so env i of a batch seeded ``s`` behaves as the
1-env instance ``seed=[env_seeds(s, num_envs)[i]]``. The keys are the only randomness;
``get_rng_state`` returns them as numpy and ``set_rng_state`` restores them.

Threads: jax is imported in the constructor only. Before XLA's CPU backend starts, ``jax_cpu_threads``
(default 1) is written to ``PJRT_NPROC``, which sizes XLA's intra-op thread pool, so that jax leaves the
other core to torch (whose threads ``torch_threads`` sets). The variable is process-wide and read once:
a ``PJRT_NPROC`` already set by the user wins, and if jax's backend is already running we only warn.
Compiled functions are cached per env configuration, so several instances (e.g. train and test envs)
with the same settings and ``num_envs`` compile once.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import sys
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult, VecEnv
from concord.envs.seeding import Seed, batch_seeds
from concord.errors import ConfigError
from concord.registry import register_env

log = logging.getLogger(__name__)

ATTACK_MODES = ("closest", "random")
OBSERVATION_TYPES = ("unit_list", "conic")


def _import_jax(cpu_threads: int, cache_dir: str | None) -> Any:
    """Import jax, capping XLA's CPU thread pool first when its backend has not started yet, and point its
    persistent compilation cache at ``cache_dir`` (compiling a map takes seconds; a cached one loads at once)."""
    import jax
    from jax._src import xla_bridge

    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache_dir))

    if cpu_threads > 0:
        if "PJRT_NPROC" in os.environ:
            log.debug("PJRT_NPROC=%s already set; jax_cpu_threads not applied", os.environ["PJRT_NPROC"])
        elif xla_bridge.backends_are_initialized():
            log.warning("jax's backend is already running; jax_cpu_threads=%d cannot take effect", cpu_threads)
        else:
            os.environ["PJRT_NPROC"] = str(cpu_threads)
    return jax


def _map_table() -> dict[str, Any]:
    """JaxMARL's scenario table, imported quietly.

    jaxmarl 0.2.0 prints on import, and its ``mabrax_env`` sets ``sys.stdout``/``sys.stderr`` back to
    ``sys.__stdout__``/``sys.__stderr__`` (undoing any redirection, e.g. pytest's capture). We send the
    prints to the debug log and put the streams back as they were.
    """
    if "jaxmarl.environments.smax.smax_env" not in sys.modules:
        buf = io.StringIO()
        saved = sys.stdout, sys.stderr, sys.__stdout__
        sys.stdout = sys.__stdout__ = buf
        try:
            import jaxmarl.environments.smax.smax_env  # noqa: F401
        finally:
            sys.stdout, sys.stderr, sys.__stdout__ = saved
        if buf.getvalue().strip():
            log.debug("jaxmarl: %s", " ".join(buf.getvalue().split()))
    return sys.modules["jaxmarl.environments.smax.smax_env"].MAP_NAME_TO_SCENARIO


class _Compiled(NamedTuple):
    """One SMAX configuration: the jaxmarl env and its jitted batched reset / step."""

    env: Any
    reset: Callable  # (states, keys, mask (E,)) -> states, keys, out
    step: Callable  # (states, keys, actions (E, n), active (E,)) -> states, keys, out
    traces: dict[str, int]  # how often each was traced (a retrace means a recompile)


def _state_scale(env: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry factors bringing SMAX's world state to SMAC-like [0, 1] ranges, and the entries to clip to [0, 1].

    JaxMARL's world state holds, per unit, [health fraction, x, y, weapon cooldown, unit-type one-hot], then every
    unit's team and its unit type as an integer. Raw positions (0..32), type indices (0..5) and cooldowns (which
    keep falling below 0 while a unit does not fire) make the state hypernetworks of QMIX-style mixers produce
    mixing weights tens of times too large, and Q-values diverge. Positions are divided by the map size, type
    indices by their maximum, cooldowns by the longest possible one and clipped at 0 (ready to fire).
    """
    n_units = env.num_allies + env.num_enemies
    n_feat = len(env.own_features)
    scale = np.ones(env.state_size, dtype=np.float32)
    clip = np.zeros(env.state_size, dtype=bool)
    per_unit = scale[: n_units * n_feat].reshape(n_units, n_feat)  # views
    per_unit[:, 1] = 1.0 / env.map_width
    per_unit[:, 2] = 1.0 / env.map_height
    per_unit[:, 3] = 1.0 / (float(np.max(env.unit_type_weapon_cooldowns)) + 2 * float(env.time_per_step))
    clip[: n_units * n_feat].reshape(n_units, n_feat)[:, 3] = True
    scale[n_units * n_feat + n_units:] = 1.0 / max(env.unit_type_bits - 1, 1)
    return scale, clip


@functools.lru_cache(maxsize=None)
def _compile(map_name: str, max_steps: int, observation_type: str, see_enemy_actions: bool,
             walls_cause_death: bool, enemy_shoots: bool, attack_mode: str, won_battle_bonus: float,
             use_self_play_reward: bool, normalise_state: bool) -> _Compiled:
    """Build the env and the two batched functions; cached so equal configs share compilations."""
    import jax
    import jax.numpy as jnp
    from jaxmarl.environments.smax import HeuristicEnemySMAX

    env = HeuristicEnemySMAX(
        scenario=_map_table()[map_name], max_steps=max_steps, observation_type=observation_type,
        see_enemy_actions=see_enemy_actions, walls_cause_death=walls_cause_death, enemy_shoots=enemy_shoots,
        attack_mode=attack_mode, won_battle_bonus=won_battle_bonus, use_self_play_reward=use_self_play_reward,
    )
    agents = list(env.agents)  # the allies
    n_allies, n_enemies = env.num_allies, env.num_enemies
    traces = {"reset": 0, "step": 0}
    scale, clip = _state_scale(env) if normalise_state else (np.ones(env.state_size, np.float32),
                                                                np.zeros(env.state_size, bool))
    state_scale, state_clip = jnp.asarray(scale), jnp.asarray(clip)

    def observe(st: Any) -> tuple:
        """Everything the host needs about one env after a reset or step."""
        obs_d = env.get_obs(st)
        av_d = env.get_avail_actions(st)
        obs = jnp.stack([obs_d[a] for a in agents]).astype(jnp.float32)  # (n, obs_dim)
        state = env.get_world_state(st).astype(jnp.float32) * state_scale  # (state_dim,)
        state = jnp.where(state_clip, jnp.clip(state, 0.0, 1.0), state)
        avail = jnp.stack([av_d[a] for a in agents]).astype(bool)  # (n, n_actions)
        positions = st.state.unit_positions[:n_allies].astype(jnp.float32)  # (n, 2)
        alive = st.state.unit_alive  # (n_allies + n_enemies,)
        dead_allies = n_allies - jnp.sum(alive[:n_allies])
        dead_enemies = n_enemies - jnp.sum(alive[n_allies:])
        allies_wiped, enemies_wiped = dead_allies == n_allies, dead_enemies == n_enemies
        terminated = allies_wiped | enemies_wiped
        truncated = ~terminated & (st.state.step >= max_steps)
        won = enemies_wiped & ~allies_wiped
        return obs, state, avail, positions, terminated, truncated, won, dead_allies, dead_enemies

    def reset_one(key: Any) -> tuple:
        key, reset_key = jax.random.split(key)
        _, st = env.reset(reset_key)
        return st, key

    def step_one(st: Any, key: Any, actions: Any) -> tuple:
        key, step_key = jax.random.split(key)
        _, st, rewards, _, _ = env.step_env(step_key, st, {a: actions[i] for i, a in enumerate(agents)})
        return st, key, rewards[agents[0]].astype(jnp.float32)  # every ally gets the team reward

    def keep(mask: Any, new: Any, old: Any) -> Any:
        """``new`` where mask (leading env axis), else ``old``; dtypes pinned to ``old``'s (no retrace)."""
        return jax.tree.map(
            lambda n, o: jnp.where(mask.reshape(mask.shape + (1,) * (o.ndim - 1)), n, o).astype(o.dtype), new, old)

    def reset_batch(states: Any, keys: Any, mask: Any) -> tuple:
        traces["reset"] += 1
        new_states, new_keys = jax.vmap(reset_one)(keys)
        states, keys = keep(mask, new_states, states), keep(mask, new_keys, keys)
        return states, keys, jax.vmap(observe)(states)

    def step_batch(states: Any, keys: Any, actions: Any, active: Any) -> tuple:
        traces["step"] += 1
        new_states, new_keys, reward = jax.vmap(step_one)(states, keys, actions)  # reward (E,)
        states, keys = keep(active, new_states, states), keep(active, new_keys, keys)
        return states, keys, (reward, *jax.vmap(observe)(states))

    return _Compiled(env, jax.jit(reset_batch), jax.jit(step_batch), traces)


@register_env("smax")
class SMAXVecEnv(VecEnv):
    """``num_envs`` SMAX battles against JaxMARL's heuristic enemy, stepped by one jitted vmap call."""

    def __init__(self, num_envs: int, seed: Seed, map_name: str = "3m", max_steps: int = 100,
                 observation_type: str = "unit_list", see_enemy_actions: bool = True,
                 walls_cause_death: bool = True, enemy_shoots: bool = True, attack_mode: str = "closest",
                 won_battle_bonus: float = 1.0, use_self_play_reward: bool = False, jax_cpu_threads: int = 1,
                 jax_platform: str = "cpu", jax_compilation_cache: str | None = "~/.cache/concord/jax",
                 normalise_state: bool = True) -> None:
        if num_envs < 1:
            raise ConfigError(f"smax: num_envs must be >= 1, got {num_envs}")
        if max_steps < 1:
            raise ConfigError(f"smax: max_steps must be >= 1, got {max_steps}")
        if attack_mode not in ATTACK_MODES:
            raise ConfigError(f"smax: unknown attack_mode '{attack_mode}'; valid: {', '.join(ATTACK_MODES)}")
        if observation_type not in OBSERVATION_TYPES:
            raise ConfigError(
                f"smax: unknown observation_type '{observation_type}'; valid: {', '.join(OBSERVATION_TYPES)}")
        jax = _import_jax(jax_cpu_threads, jax_compilation_cache)
        maps = _map_table()
        if map_name not in maps:
            raise ConfigError(f"smax: unknown map_name '{map_name}'; valid maps: {', '.join(sorted(maps))}")
        try:
            self._device = jax.devices(jax_platform)[0]
        except RuntimeError as e:
            raise ConfigError(f"smax: jax_platform '{jax_platform}' is not available ({e})") from e

        self._jax = jax
        self._fns = _compile(map_name, int(max_steps), observation_type, bool(see_enemy_actions),
                             bool(walls_cause_death), bool(enemy_shoots), attack_mode, float(won_battle_bonus),
                             bool(use_self_play_reward), bool(normalise_state))
        env = self._fns.env
        self.num_envs = int(num_envs)
        self.map_name = map_name
        self.n_agents = int(env.num_allies)
        self.n_enemies = int(env.num_enemies)
        self.n_actions = int(env.num_ally_actions)
        self.episode_limit = int(max_steps)
        self.obs_dim = int(env.obs_size)
        self.state_dim = int(env.state_size)
        self.unit_dim = len(env.own_features)

        seeds = np.array([s % 2**32 for s in batch_seeds(seed, self.num_envs)], dtype=np.uint32)  # (E,)
        # Committed to the device, so the jitted functions run there.
        keys = jax.vmap(jax.random.PRNGKey)(jax.numpy.asarray(seeds))  # (E, 2)
        self._keys = jax.device_put(keys, self._device)
        # Placeholder states (never observed: an env must be reset before it is stepped).
        shapes = jax.eval_shape(jax.vmap(lambda k: env.reset(k)[1]), self._keys)
        self._states = jax.device_put(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes), self._device)
        self._needs_reset = np.ones(self.num_envs, dtype=bool)

    def get_env_info(self) -> dict[str, Any]:
        return {
            "n_agents": self.n_agents,
            "n_actions": self.n_actions,
            "obs_shape": self.obs_dim,
            "state_shape": self.state_dim,
            "episode_limit": self.episode_limit,
            "extras": {"positions": (self.n_agents, 2)},
            "unit_dim": self.unit_dim,  # per-unit features at the start of the state (allies first), for QPLEX
        }

    def _ids(self, env_ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"smax: env_ids {ids.tolist()} out of range [0, {self.num_envs})")
        if np.unique(ids).size != ids.size:
            raise ValueError(f"smax: duplicate env_ids {ids.tolist()}")
        return ids

    def _mask(self, ids: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.num_envs, dtype=bool)  # (E,)
        mask[ids] = True
        return mask

    @staticmethod
    def _env_obs(out: Sequence[np.ndarray], ids: np.ndarray) -> EnvObs:
        obs, state, avail, positions = out[:4]
        # Fancy indexing copies, so the runner may write into these arrays.
        return EnvObs(obs=obs[ids], state=state[ids], avail_actions=avail[ids], extras={"positions": positions[ids]})

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = self._ids(env_ids)
        self._states, self._keys, out = self._fns.reset(self._states, self._keys, self._mask(ids))
        out = [np.asarray(x) for x in out]
        self._needs_reset[ids] = False
        return self._env_obs(out, ids)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = self._ids(env_ids)
        actions = np.asarray(actions)
        if actions.shape != (ids.size, self.n_agents):
            raise ValueError(f"smax: actions must have shape {(ids.size, self.n_agents)}, got {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= self.n_actions):
            raise ValueError(f"smax: actions must lie in [0, {self.n_actions})")
        if self._needs_reset[ids].any():
            raise RuntimeError(f"smax: envs {ids[self._needs_reset[ids]].tolist()} must be reset before stepping")
        full = np.zeros((self.num_envs, self.n_agents), dtype=np.int32)  # (E, n_agents)
        full[ids] = actions
        self._states, self._keys, out = self._fns.step(self._states, self._keys, full, self._mask(ids))
        reward, *obs_out = [np.asarray(x) for x in out]
        terminated, truncated, won, dead_allies, dead_enemies = (x[ids] for x in obs_out[4:])
        ended = terminated | truncated  # (k,)
        self._needs_reset[ids[ended]] = True
        infos: list[dict[str, Any]] = [
            {"battle_won": int(won[j]), "dead_allies": int(dead_allies[j]), "dead_enemies": int(dead_enemies[j])}
            if ended[j] else {}
            for j in range(ids.size)
        ]
        return StepResult(
            obs=self._env_obs(obs_out, ids),
            reward=reward[ids].astype(np.float32),
            terminated=terminated.astype(bool),
            truncated=truncated.astype(bool),
            infos=infos,
        )

    def get_rng_state(self) -> dict[str, np.ndarray]:
        return {"keys": np.array(self._keys, dtype=np.uint32)}  # (E, 2), a copy

    def set_rng_state(self, state: Any) -> None:
        keys = np.asarray(state["keys"], dtype=np.uint32)
        if keys.shape != tuple(self._keys.shape):
            raise ValueError(f"smax: rng state keys must have shape {tuple(self._keys.shape)}, got {keys.shape}")
        self._keys = self._jax.device_put(keys, self._device)
