"""Timing statistics: the CPU of env worker processes counts in ``steps_per_tree_cpu_second``."""
from __future__ import annotations

import subprocess
import sys
import time

from concord.run import tree_cpu_seconds

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nprint('burned', flush=True)\ntime.sleep(30)"


def test_tree_cpu_includes_live_child_processes():
    t0, own0 = tree_cpu_seconds(), time.process_time()
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "burned"  # the child has used 0.5 s of CPU and now sleeps
        tree, own = tree_cpu_seconds() - t0, time.process_time() - own0
    finally:
        child.kill()
        child.wait()
    assert tree - own >= 0.45


def test_a_subprocess_run_logs_both_cpu_rates(run_main):
    code, result, err = run_main("qmix", "chain_test", "runner=parallel", "batch_size_run=2", "t_max=60",
                                 "log_interval=20", "test_nepisode=2", "batch_size=2", "save_model=False")
    assert code == 0, err
    assert "steps_per_tree_cpu_second" in err and "steps_per_cpu_second" in err
