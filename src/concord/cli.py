"""Concord's command line: ``concord --config=ALG --env-config=ENV with key=value nested.key=value``
(also ``python main.py ...`` from a checkout, without installing).

The configuration is merged and validated (keys, types, registry names, env prerequisites) before any work
starts; bad input is reported as one line. The run is a sacred experiment (FileStorageObserver under
``results/sacred/``) and ends by printing its last test statistics and result locations as one JSON line.
A run from ``checkpoint_path`` uses the checkpoint's config (``concord.resume``). Exit codes: 0 done; 1 training
diverged (``on_nonfinite=stop``); 2 bad input or env workers failing past ``max_env_failures``; 130/143 stopped
by SIGINT/SIGTERM at a round boundary with a checkpoint (130 also for a second Ctrl-C, without one).

``concord sweep FILE [--parallel N] [--ray | --ray-address ADDRESS]`` runs an experiment grid
(``concord.experiments``) and ``concord report FILE`` writes its report to ``docs/results/<name>.md``.
"""
from __future__ import annotations

import json
import logging
import os
import sys


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s] %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("jax", "absl", "matplotlib", "sacred"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run one experiment from command-line arguments (``sys.argv[1:]`` by default); the exit code."""
    if argv is None:
        argv = sys.argv[1:]
    _setup_logging()
    if argv and argv[0] in ("sweep", "report"):
        return _experiments(argv[0], argv[1:])
    from concord.config import check_registry_names, load_config, parse_updates, split_cli
    from concord.errors import ConfigError, EnvWorkerError
    from concord.resume import prepare
    from concord.utils.divergence import DivergenceError
    from concord.utils.interrupts import Interrupted

    try:
        alg, env, updates = split_cli(argv)
        config = prepare(load_config(alg, env, updates), parse_updates(updates))
        check_registry_names(config)
        from concord.registry import ENVS

        ENVS.get(config["env"]).check_available(config["env_args"])  # e.g. StarCraft II installed
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from sacred import SETTINGS, Experiment
    from sacred.observers import FileStorageObserver

    from concord.run import Experiment as Run
    from concord.run import run

    try:  # build everything first: bad env arguments or a buffer that cannot fit stop before sacred makes a run
        exp = Run(config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    SETTINGS.CAPTURE_MODE = "no"
    SETTINGS.DISCOVER_DEPENDENCIES = "none"
    SETTINGS.DISCOVER_SOURCES = "none"
    ex = Experiment("concord", save_git_info=False)
    ex.logger = logging.getLogger("sacred")
    ex.observers.append(FileStorageObserver(os.path.join(config["local_results_path"], "sacred")))
    ex.add_config(config)
    result: dict = {}

    @ex.main
    def _main(_run):  # sacred passes its run object; the config is the validated one above
        result.update(run(config, _run, exp))

    try:
        ex.run()
    except (ConfigError, EnvWorkerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DivergenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:  # SIGINT/SIGTERM: the round finished and a checkpoint was written
        print(f"interrupted: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside training, or a second one during it
        print("interrupted: aborted at once (no checkpoint written)", file=sys.stderr)
        return 130
    print(json.dumps(result), flush=True)
    return 0


def _experiments(command: str, argv: list[str]) -> int:
    """``sweep`` or ``report``: one JSON line (the sweep's summary, or the report's path); 1 if a run failed."""
    from concord.errors import ConfigError
    from concord.experiments import report, sweep

    try:
        if command == "report":
            print(json.dumps({"report": report.main(argv)}), flush=True)
            return 0
        summary = sweep.main(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary), flush=True)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
