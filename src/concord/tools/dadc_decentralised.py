"""Decentralised execution of DADC (dadc.md §5, Fig. 1(a)): every agent runs its own copy of the coordinator and
learner in its own process and receives only the common information plus its own local information.

The driver process steps the env. At each step it sends agent k the common features Z_t (the prescription set's
``common``, taken from agent k's *own* observation row), agent k's observation row and action mask, and — after
the step — the common reward. Agent k computes θ_t with its copy of the coordinator (same seed as every other
copy), samples its own action from h^k_{θ_t}(· | L^k_t) with a private generator, and after every
``rollout_episodes`` episodes updates its copy from its own record of (Z, θ, log ψ, R) with
``DADCLearner.train_common``. ``run_decentralised`` returns every copy's θ history and final state, so that a test
can check that the copies agree bit for bit.
"""
from __future__ import annotations

import io
import multiprocessing as mp
from typing import Any, Sequence

import numpy as np
import torch

from concord.config import load_config, to_namespace


def _agent(conn: Any, k: int, alg: str, env: str, updates: Sequence[str], env_info: dict[str, Any]) -> None:
    """Agent k's process: its copy of the controller and learner; a private generator for its own action."""
    from concord.controllers.dadc import DADCController
    from concord.learners.dadc import DADCLearner

    torch.set_num_threads(1)
    args = to_namespace(load_config(alg, env, list(updates)))
    torch.manual_seed(args.seed)
    mac = DADCController(env_info, args, torch.device("cpu"))
    learner = DADCLearner(mac, env_info, args, torch.device("cpu"))
    own = np.random.default_rng([args.seed, 1000 + k])  # agent k's private randomness
    n_env, limit = args.batch_size_run, env_info["episode_limit"]
    record: list[dict[str, np.ndarray]] = []
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            buf = io.BytesIO()
            torch.save(learner.state_dict(), buf)
            conn.send(buf.getvalue())
            return
        if msg[0] == "reset":
            mac.init_hidden(n_env)
            ep = {"z": np.zeros((n_env, limit + 1, mac.pset.common_dim), np.float32),
                  "theta": np.zeros((n_env, limit + 1, mac.pset.n_params), np.float32),
                  "log_prob": np.zeros((n_env, limit + 1), np.float32),
                  "reward": np.zeros((n_env, limit + 1), np.float32),
                  "filled": np.zeros((n_env, limit + 1), np.float32)}
            if mac.naf and mac.pset.discrete:  # NAF's action a_t (the prescription logits) beside θ_t
                ep["action"] = np.zeros((n_env, limit + 1, mac.pset.n_params), np.float32)
            record.append(ep)
            continue
        _, t, z, local_obs, avail = msg  # (E, dz), (E, obs_dim), (E, n_actions)
        ep = record[-1]
        ep["z"][:, t] = z
        if local_obs is None:  # the observation after the last step: stored for the bootstrap only
            if sum(len(e["z"]) for e in record) >= args.rollout_episodes:
                cb = {key: torch.from_numpy(np.concatenate([e[key] for e in record])) for key in record[0]}
                cb["terminated"] = torch.zeros_like(cb["reward"])
                learner.train_common(cb)
                record.clear()
            conn.send(None)
            continue
        theta, logp = mac.prescribe(torch.from_numpy(z), np.arange(n_env))
        ep["theta"][:, t], ep["log_prob"][:, t], ep["filled"][:, t] = theta.numpy(), logp.numpy(), 1.0
        if "action" in ep:
            ep["action"][:, t] = mac.last_action.numpy()
        p = mac.pset.local_log_probs(theta, torch.from_numpy(local_obs), k).exp().numpy() * avail  # (E, A)
        p = p / p.sum(-1, keepdims=True)
        action = (np.cumsum(p, -1) < own.random((n_env, 1))).sum(-1).clip(max=p.shape[-1] - 1)  # (E,)
        conn.send((theta.numpy(), action))
        ep["reward"][:, t] = conn.recv()  # the common reward R_t


def run_decentralised(alg: str, env: str, updates: Sequence[str], n_rounds: int) -> tuple[list[bytes], np.ndarray]:
    """``n_rounds`` rounds of ``batch_size_run`` episodes with one process per agent (spawned).

    Returns every agent's final ``DADCLearner.state_dict`` (``torch.save`` bytes) and the θ_t each agent computed,
    ``(n_agents, steps, E, dθ)``. Raises if the copies ever disagree on θ_t (they must, bit for bit).
    """
    from concord.controllers.dadc import DADCController
    from concord.envs.factory import make_vec_env

    args = to_namespace(load_config(alg, env, list(updates)))
    vec = make_vec_env(args.env, args.env_args, args.batch_size_run, args.seed, False, tuple(args.plugins))
    info = vec.get_env_info()
    probe = DADCController(info, args, torch.device("cpu")).pset  # only to extract the common features
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for k in range(info["n_agents"]):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_agent, args=(child, k, alg, env, list(updates), info), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    thetas = []
    ids = np.arange(vec.num_envs)
    try:
        for _ in range(n_rounds):
            obs = vec.reset(ids)
            for c in pipes:
                c.send(("reset",))
            for t in range(info["episode_limit"]):
                o = torch.from_numpy(np.asarray(obs.obs, np.float32))  # (E, n, obs_dim)
                for k, c in enumerate(pipes):
                    z = probe.common(o[:, k:k + 1]).numpy()  # agent k's own copy of the common features
                    c.send(("step", t, z, obs.obs[:, k], obs.avail_actions[:, k]))
                replies = [c.recv() for c in pipes]
                step_thetas = np.stack([r[0] for r in replies])  # (n, E, dθ)
                if not all(np.array_equal(step_thetas[0], th) for th in step_thetas[1:]):
                    raise RuntimeError(f"the agents' prescriptions differ at step {t}")
                thetas.append(step_thetas)
                res = vec.step(ids, np.stack([r[1] for r in replies], axis=1))
                for c in pipes:
                    c.send(res.reward)
                obs = res.obs
            o = torch.from_numpy(np.asarray(obs.obs, np.float32))
            for k, c in enumerate(pipes):
                c.send(("step", info["episode_limit"], probe.common(o[:, k:k + 1]).numpy(), None, None))
            for c in pipes:
                c.recv()
        states = []
        for c in pipes:
            c.send(("stop",))
            states.append(c.recv())
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        vec.close()
    return states, np.stack(thetas, axis=1)
