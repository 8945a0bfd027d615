"""SIGINT and SIGTERM finish the round, checkpoint, print one line and exit 130/143; the checkpoint resumes
exactly; a second Ctrl-C aborts at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from concord.utils.checkpoint import find_checkpoint, load_checkpoint
from concord.utils.interrupts import StopRequests
from tests.conftest import ROOT
from tests.test_resume import assert_same

KEYS = ["plugins=[tests.chain_env]", "env_args.limit=4", "test_interval=40", "test_nepisode=2", "log_interval=8",
        "use_tensorboard=False", "seed=5", "batch_size=4", "epsilon_anneal_time=100", "target_update_interval=3"]


def _wait_for(path: str, text: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early ({proc.returncode}): {open(path).read()[-2000:]}")
        if os.path.exists(path) and open(path).read().count(text) >= 2:
            return
        time.sleep(0.05)
    raise AssertionError(f"'{text}' never appeared")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_and_the_checkpoint_resumes_exactly(run_main, tmp_path, sig):
    results = tmp_path / "signalled"
    err_path = str(tmp_path / "stderr.txt")
    with open(err_path, "w") as err_file:
        proc = subprocess.Popen([sys.executable, "main.py", "--config=qmix", "--env-config=chain_test", "with",
                                 f"local_results_path={results}", "t_max=100000000", "save_model_interval=100000000",
                                 "progress_bar=False", *KEYS], cwd=ROOT, stdout=subprocess.PIPE, stderr=err_file)
        _wait_for(err_path, "t_env: ", proc)  # training is under way (two console blocks)
        t0 = time.perf_counter()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        elapsed = time.perf_counter() - t0
    err = open(err_path).read()
    assert proc.returncode == 128 + sig, err[-2000:]
    assert elapsed < 10, elapsed
    assert out == b""  # no result line
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: {signal.Signals(sig).name}: stopped at t_env=") and "checkpoint" in last
    assert "Traceback" not in err
    models = os.path.join(results, "models")
    (run,) = os.listdir(models)
    ck = find_checkpoint(os.path.join(models, run), 0)
    t_stop = int(os.path.basename(ck))
    assert t_stop > 0 and t_stop % 4 == 0  # at a round boundary (episodes of 4 steps)

    t_end = t_stop + 60
    code, straight, e = run_main("qmix", "chain_test", *KEYS, f"t_max={t_end}", "save_model_interval=100000000")
    assert code == 0, e
    code, resumed, e = run_main("qmix", "chain_test", f"t_max={t_end}", f"checkpoint_path={ck}")
    assert code == 0, e
    assert resumed["t_env"] == straight["t_env"] and resumed["test_return_mean"] == straight["test_return_mean"]
    assert_same(load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"],
                load_checkpoint(find_checkpoint(resumed["models_dir"], 0))["learner"])


def test_a_second_ctrl_c_aborts_at_once():
    with StopRequests() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.signum == signal.SIGINT  # the first only asks the run to stop after its round
        signal.raise_signal(signal.SIGTERM)  # a further SIGTERM is ignored
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
