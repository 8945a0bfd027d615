"""Concord's command line: ``concord --config=ALG --env-config=ENV with key=value nested.key=value``
(also ``python main.py ...`` from a checkout, without installing).

The configuration is merged and validated (keys, types, registry names, env prerequisites) before any work
starts; bad input is reported as one line. The run is a sacred experiment (FileStorageObserver under
``results/sacred/``) and ends by printing its last test statistics and result locations as one JSON line.
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
    from concord.config import check_registry_names, load_config, split_cli
    from concord.errors import ConfigError, EnvWorkerError

    try:
        alg, env, updates = split_cli(argv)
        config = load_config(alg, env, updates)
        check_registry_names(config)
        from concord.registry import ENVS

        ENVS.get(config["env"]).check_available(config["env_args"])  # e.g. StarCraft II installed
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from sacred import SETTINGS, Experiment
    from sacred.observers import FileStorageObserver

    from concord.run import run

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
        result.update(run(config, _run))

    try:
        ex.run()
    except (ConfigError, EnvWorkerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
