# The two commands a new user needs. Both set up .venv on a fresh machine first: `make demo` the
# pinned stack it runs on, `make test` that plus the dev extras (torch and diffusers, the parity
# references, and pytest), so a demo does not wait for packages only the tests use. pip does not
# byte-compile what it installs (--no-compile): Python compiles the modules a run imports when it
# first imports them, and most of transformers is never imported; the base install took 46 s
# instead of 86 s, the first import 6 s longer (session 36).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CKSUM := $(shell cksum setup.py | cut -d' ' -f1)
BASE := $(VENV)/.base-$(CKSUM)
DEV := $(VENV)/.dev-$(CKSUM)

.PHONY: test demo clean-venv

$(BASE): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q --no-compile -e . 2>&1 | grep -v "is ignored" || true
	@# gotr1_jax first: importing it quiets transformers' advice that torch is missing (none here)
	$(PY) -c "import gotr1_jax, jax, flax, optax, orbax.checkpoint, transformers"
	@rm -f $(VENV)/.base-* $(VENV)/.installed-* && touch $(BASE)

$(DEV): $(BASE)
	$(PY) -m pip install -q --no-compile -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import torch, diffusers, pytest, xdist"
	@rm -f $(VENV)/.dev-* && touch $(DEV)

test: $(DEV)
	XLA_FLAGS=--xla_force_host_platform_device_count=8 $(PY) -m pytest -q -n 2 --dist worksteal tests

# The pair: 60 steps on GoT-R1's layout reward (read by the oracle's rule), then 100 of the GoT-R1 job
# (configs/shapes_demo.py) from that policy; README, "What `make demo` runs and prints".
demo: $(BASE)
	$(PY) tools/train.py --config configs/shapes_demo_staged.py

clean-venv:
	rm -rf $(VENV)
