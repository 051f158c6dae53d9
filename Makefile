# The two commands a new user needs. Both set up .venv on a fresh machine first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum setup.py | cut -d' ' -f1)

.PHONY: test demo clean-venv

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -e '.[dev]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import jax, flax, optax, orbax.checkpoint, transformers, torch, gotr1_jax"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

test: $(STAMP)
	XLA_FLAGS=--xla_force_host_platform_device_count=8 $(PY) -m pytest -q -n 2 --dist loadfile tests

demo: $(STAMP)
	$(PY) tools/train.py --config configs/shapes_demo.py

clean-venv:
	rm -rf $(VENV)
