"""PyTorch/HF <-> Flax weight conversion: one pattern->transform table per family.

`FAMILIES` names the modules behind `tools/convert.py --family NAME`. Each exposes
`LAYOUTS` (the torch layouts it writes), `to_flax(src, dst)`, `to_torch(src, dst, layout)` and
`verify(flax_dir, torch_dir) -> {output: max relative error}`; torch is imported only by `verify`.
"""
from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES = {"janus": "gotr1_jax.convert.janus", "qwen_vl": "gotr1_jax.convert.qwen_vl"}
# How to get torch where `make demo` installed the stack without it (the Makefile's dev extras).
INSTALL_TORCH = "install the dev extras (`make test` does, or `.venv/bin/pip install -e '.[dev]'`)"


def family_module(name: str) -> ModuleType:
  """The conversion module of family `name`, naming the choices when it is unknown."""
  if name not in FAMILIES:
    raise ValueError(f"unknown model family {name!r}; choose one of {sorted(FAMILIES)}.")
  return importlib.import_module(FAMILIES[name])
