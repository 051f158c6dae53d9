"""Converts checkpoints between torch layouts (safetensors) and our Flax directory, and verifies them.

  python tools/convert.py --family janus --to flax --src GoT-R1-1B --dst ckpt/GoT-R1-1B-flax --verify
  python tools/convert.py --family janus --to torch --layout transformers --src ckpt/GoT-R1-1B-flax \
      --dst ckpt/GoT-R1-1B-hf --verify
  python tools/convert.py --family qwen_vl --to flax --src Qwen2.5-VL-7B-Instruct --dst ckpt/judge --verify

Families and torch layouts: janus (deepseek = DeepSeek's original names, which GoT-R1 ships;
transformers = JanusForConditionalGeneration), qwen_vl (transformers). Tokenizer and processor files
are carried across. Only safetensors are read; a wrong or partial checkpoint stops with one error
listing the unmatched keys.

--verify builds the torch reference and our Flax model from the two directories, runs both in fp32 on
the same random inputs, prints `max rel error <x>` per output and exits with status 1 above 1e-4.
It needs memory for both models in fp32.
"""
import importlib.util
import logging
import os
import sys
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.convert import FAMILIES, INSTALL_TORCH, family_module  # noqa: E402
from gotr1_jax.convert.flax_io import VERIFY_TOLERANCE  # noqa: E402

_FAMILY = flags.DEFINE_enum("family", None, sorted(FAMILIES), "Model family.")
_TO = flags.DEFINE_enum("to", None, ["flax", "torch"], "Direction: torch -> flax, or flax -> torch.")
_SRC = flags.DEFINE_string("src", None, "Source checkpoint directory.")
_DST = flags.DEFINE_string("dst", None, "Destination directory (created).")
_LAYOUT = flags.DEFINE_string("layout", None, "Torch layout to write with --to torch "
                              "(janus: deepseek | transformers; qwen_vl: transformers).")
_VERIFY = flags.DEFINE_boolean("verify", False, "Check the result against the torch reference in fp32.")


def convert(family: str, to: str, src: str, dst: str, layout: str | None = None, verify: bool = False) -> int:
  """Runs one conversion (and its check); returns the process exit status."""
  module = family_module(family)
  if not os.path.isdir(src):
    raise SystemExit(f"--src {src} is not a directory.")
  if os.path.abspath(src) == os.path.abspath(dst):
    raise SystemExit("--dst must differ from --src.")
  if verify and importlib.util.find_spec("torch") is None:
    raise SystemExit(f"--verify needs torch (the reference): {INSTALL_TORCH}; or convert without --verify.")
  t0 = time.perf_counter()
  if to == "flax":
    if layout:
      raise SystemExit("--layout applies to --to torch only; the source layout is detected.")
    module.to_flax(src, dst)
    flax_dir, torch_dir = dst, src
  else:
    layout = layout or module.LAYOUTS[0]
    if layout not in module.LAYOUTS:
      raise SystemExit(f"--layout {layout} is not one of {family}'s layouts {list(module.LAYOUTS)}.")
    module.to_torch(src, dst, layout)
    flax_dir, torch_dir = src, dst
  print(f"Converted {family} {src} -> {dst} ({to}{', ' + layout if layout else ''}) in "
        f"{time.perf_counter() - t0:.1f} s.")
  if not verify:
    return 0
  errors = module.verify(flax_dir, torch_dir)
  for name, err in errors.items():
    print(f"{name}: max rel error {err:.3e}")
  bad = [name for name, err in errors.items() if not err <= VERIFY_TOLERANCE]
  if bad:
    print(f"FAILED: {bad} above {VERIFY_TOLERANCE:g}: the conversion does not reproduce the torch model.")
    return 1
  print(f"OK: every output within {VERIFY_TOLERANCE:g} of the torch reference (fp32).")
  return 0


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  sys.exit(convert(_FAMILY.value, _TO.value, _SRC.value, _DST.value, _LAYOUT.value, _VERIFY.value))


if __name__ == "__main__":
  flags.mark_flags_as_required(["family", "to", "src", "dst"])
  config_lib.run_tool(main)
