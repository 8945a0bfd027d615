"""Contract tests, parametrised over the registries (a newly registered part is covered without editing this file).

- every mixer: the call signature, its output shape, finite values on padded steps, a state-dict round trip;
- every learner on a tiny env: it trains through ``update``, and a learner restored from its ``state_dict``
  continues exactly as the original;
- every controller with every action selector: action masks respected, declared per-step fields stored.
"""
from __future__ import annotations

import io
import os
import tempfile

import numpy as np
import pytest
import torch
import yaml

from concord.config import CONFIG_DIR
from concord.controllers.base import Controller
from concord.learners.base import Learner
from concord.modules.mixers.base import Mixer, batch_context, make_mixer
from concord.registry import ACTION_SELECTORS, LEARNERS, MACS, MIXERS
from tests.conftest import build_parts
from tests.test_resume import assert_same

CHAIN = ["plugins=[tests.chain_env]", "seed=3", "env_args.limit=5"]
DEVICE = torch.device("cpu")


def _parts(alg: str, *updates: str, n_envs: int = 3):
    return build_parts(alg, "chain_test", *CHAIN, f"batch_size_run={n_envs}", *updates)


def _alg_for_learner(name: str) -> str:
    """An algorithm yaml that selects learner ``name`` (every learner must be reachable from one)."""
    found = []
    for fname in sorted(os.listdir(os.path.join(CONFIG_DIR, "algs"))):
        with open(os.path.join(CONFIG_DIR, "algs", fname)) as f:
            spec = yaml.safe_load(f) or {}
        if fname.endswith(".yaml") and spec.get("learner", "q_learner") == name:
            found.append(("mac" in spec or "runner" in spec, fname[:-5]))  # prefer the default controller and runner
    assert found, f"no algorithm yaml selects learner '{name}'"
    return min(found)[1]


def _own(registry) -> list[str]:
    return [n for n in registry.names() if getattr(registry.get(n), "__module__", "").startswith("concord.")]


# --- mixers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", _own(MIXERS))
def test_every_mixer_honours_the_contract(name):
    alg = "lan" if name == "lan_value" else "qmix"
    updates = ["qtran_inputs=values"] if name == "vast" else []
    args, runner, mac = _parts(alg, f"mixer={name}", *updates)
    mixer = make_mixer(runner.env_info, args, DEVICE)
    assert isinstance(mixer, Mixer)
    batch, _ = runner.run(mac, build_scheme_of(mac, runner), t_env=0)
    d = batch.to_torch(DEVICE, trim=False)
    # episode 0 ends after 2 steps: steps 2.. are padding (no action, nothing available)
    d["filled"][0, 2:] = 0
    d["avail_actions"][0, 3:] = False
    qs, hidden = mac.forward_seq(d)  # (B, T, n, A)
    actions = d["actions"][:, :-1]
    chosen = qs[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, T-1, n)
    ctx = batch_context(d, slice(0, -1), qs[:, :-1], actions, hidden, mac.shifted_actions(d["actions"])[:, :-1],
                        d["filled"][:, :-1])
    out = mixer(chosen, d["state"][:, :-1], ctx)
    b, t = chosen.shape[:2]
    assert out.shape[:2] == (b, t) and out.shape[2] in (1, runner.env_info["n_agents"], mixer.n_agents)
    assert torch.isfinite(out).all()
    tctx = batch_context(d, slice(1, None), qs[:, 1:], qs[:, 1:].argmax(-1), hidden, actions, d["filled"][:, 1:],
                         is_target=True)
    greedy = tctx.greedy_qs  # -inf where nothing is available
    assert torch.isinf(greedy[0, -1]).all()
    assert torch.isfinite(mixer(torch.where(torch.isfinite(greedy), greedy, torch.zeros_like(greedy)),
                                d["state"][:, 1:], tctx)).all()
    aux = mixer.auxiliary_losses(ctx, states=d["state"][:, :-1], targets=out.detach(), q_taken=out, agent_qs=chosen)
    assert all(torch.isfinite(v) for v in aux.values())
    # state-dict round trip: a fresh mixer with the saved state computes the same values
    torch.manual_seed(1)
    twin = make_mixer(runner.env_info, args, DEVICE)
    twin.load_state_dict(mixer.state_dict())
    if name in ("vast",):  # random sub-teams: compare under the same salt
        torch.manual_seed(7)
        a = mixer(chosen, d["state"][:, :-1], ctx)
        torch.manual_seed(7)
        b_ = twin(chosen, d["state"][:, :-1], ctx)
    else:
        a, b_ = mixer(chosen, d["state"][:, :-1], ctx), twin(chosen, d["state"][:, :-1], ctx)
    assert torch.allclose(a, b_)


def build_scheme_of(mac, runner):
    from concord.components.episode_buffer import build_scheme

    return build_scheme(runner.env_info, False, mac.batch_fields())


# --- learners ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", _own(LEARNERS))
def test_every_learner_trains_through_update_and_resumes_exactly(name):
    alg = _alg_for_learner(name)
    small = {"q_learner": ["batch_size=4", "buffer_size=16"], "lan": ["batch_size=4", "buffer_size=16"]}
    extra = small.get(name, ["rollout_episodes=4"])
    args, runner, mac = _parts(alg, *extra, *(["vast_eta=0.5"] if alg.startswith("vast") else []))
    learner = LEARNERS.get(name)(mac, runner.env_info, args, DEVICE)
    assert isinstance(learner, Learner) and isinstance(mac, Controller)
    stats, t_env, rounds = {}, 0, 0
    while learner.n_updates == 0:
        batch, _ = runner.run(mac, learner.scheme, t_env)
        t_env += int(batch.episode_lengths().sum())
        rounds += 1
        stats = learner.update(batch, t_env, rounds * 3)
        assert rounds < 20, "no gradient update after 20 rounds"
    assert stats and all(np.isfinite(v) for v in stats.values())
    # a learner restored into fresh parts continues bit for bit
    batch, _ = runner.run(mac, learner.scheme, t_env)
    buf = io.BytesIO()
    torch.save(learner.state_dict(), buf)  # as a checkpoint does: no tensor is shared with the original
    buf.seek(0)
    state = torch.load(buf, weights_only=False)
    with tempfile.TemporaryDirectory() as tmp:
        files = learner.save_files(tmp)
        _, _, mac2 = _parts(alg, *extra, *(["vast_eta=0.5"] if alg.startswith("vast") else []))
        torch.manual_seed(123)
        twin = LEARNERS.get(name)(mac2, runner.env_info, args, DEVICE)
        twin.load_state_dict(state)
        if files is not None:
            twin.load_files(tmp, files)
    assert_same(twin.state_dict(), learner.state_dict())
    outs = []
    for lrn in (learner, twin):
        torch.manual_seed(5)
        np.random.seed(5)
        for _ in range(4):  # enough rounds for an on-policy update too
            lrn.update(batch, t_env, rounds * 3)
        outs.append(lrn.state_dict())
    assert_same(outs[0], outs[1])


# --- controllers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("selector", _own(ACTION_SELECTORS))
@pytest.mark.parametrize("name", _own(MACS))
def test_every_controller_respects_masks_and_stores_its_fields(name, selector):
    alg = "mappo" if selector == "multinomial" else "qmix"
    args, runner, mac = _parts(alg, f"mac={name}", f"action_selector={selector}", n_envs=8)
    assert isinstance(mac, Controller)
    scheme = build_scheme_of(mac, runner)
    for t_env, test_mode in ((0, False), (10**6, False), (0, True)):
        batch, _ = runner.run(mac, scheme, t_env=t_env, test_mode=test_mode)
        filled = batch["filled"].astype(bool)
        acts = batch["actions"][filled]  # (steps, n_agents)
        avail = batch["avail_actions"][filled]  # (steps, n_agents, n_actions)
        assert np.take_along_axis(avail, acts[..., None].astype(np.int64), -1).all()
        assert (acts[:, 1] != 2).all()  # the chain env never offers agent 1 action 2
        for field in mac.batch_fields():
            assert field in batch.data
            assert batch[field][filled].any() or field == "log_prob" and test_mode
    assert all(np.isfinite(v) for v in mac.stats().values())
