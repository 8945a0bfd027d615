# Concord: `make run` trains the default experiment on an embedded env; `make test` runs the fast tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv run test test-slow plot clean-results

# requirements.txt (the pinned set, torch included) first, then Concord itself, editable (the `concord` command).
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --disable-pip-version-check -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

# The default experiment: LAN on SMAX 3m (SC2-free SMAC), 8 envs stepped as one jax batch, 2 updates per round
# (5.2 minutes wall on a quiet 2-core machine with seed=1; the test win rate first passes 0.7 at 131k steps and ends
# at 0.75: `make run RUN_ARGS="t_max=300000 seed=1"`).
RUN_ARGS ?= t_max=300000
run: venv
	$(PY) main.py --config=lan --env-config=smax with env_args.map_name=3m runner=parallel batch_size_run=8 $(RUN_ARGS)
	@echo "results: results/sacred (configs, metrics), results/tb (tensorboard), results/models (checkpoints)"
	@echo "curves:  $(PY) plot.py results/sacred --out results/curves.png"

test: venv
	$(PY) -m pytest -q -m "not slow"

test-slow: venv
	$(PY) -m pytest -q -m slow

plot: venv
	$(PY) plot.py results/sacred --out results/curves.png

clean-results:
	rm -rf results/sacred results/tb results/models results/runs
