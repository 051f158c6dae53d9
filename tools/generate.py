"""Generates GoT-R1 samples (reasoning chain -> image) from a Janus checkpoint.

  python tools/generate.py --config configs/generate_janus.py --checkpoint ckpt/GoT-R1-1B-flax \
      --prompt "a red apple left of a green cup" --prompt "two cats on a sofa" --num-samples 4 --out samples/

--checkpoint is a Flax directory from `tools/convert.py --to flax` or a torch checkpoint (DeepSeek or
transformers layout, safetensors). Writes, under --out: one PNG per sample
(prompt_<p>_sample_<s>.png), chains.jsonl (prompt, chain, parsed boxes, image file) and grid.png
(one row per prompt).
"""
import json
import logging
import os
import sys
import time

import jax
from absl import flags
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.metrics import image_grid  # noqa: E402
from gotr1_jax.sampling.janus_generate import generator_from_checkpoint  # noqa: E402

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "configs", "generate_janus.py")
_CONFIG = config_lib.define_config_file("config", _DEFAULT_CONFIG, "Generation config (file.py[:args]).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Janus checkpoint directory (Flax or torch).")
_PROMPTS = flags.DEFINE_multi_string("prompt", None, "A caption; repeat the flag for several.")
_NUM_SAMPLES = flags.DEFINE_integer("num-samples", 4, "Samples (chain + image) per prompt.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "Tokenizer directory or tokenizer.json "
                                 "(default: the checkpoint directory's).")
_SEED = flags.DEFINE_integer("seed", None, "Random seed (default: the config's).")


def write_outputs(samples, out: str, num_samples: int) -> list[str]:
  """PNGs, chains.jsonl and grid.png; returns the written paths."""
  os.makedirs(out, exist_ok=True)
  paths, records = [], []
  for i, s in enumerate(samples):
    name = f"prompt_{i // num_samples:03d}_sample_{i % num_samples:02d}.png"
    Image.fromarray(s.image).save(os.path.join(out, name))
    paths.append(os.path.join(out, name))
    records.append(dict(prompt=s.prompt, sample=i % num_samples, image=name, chain=s.chain,
                        objects=[dict(name=o.name, box=list(o.box)) for o in s.objects],
                        chain_tokens=len(s.chain_ids), chain_capped=s.chain_capped))
  with open(os.path.join(out, "chains.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  Image.fromarray(image_grid([s.image for s in samples], ncols=num_samples)).save(os.path.join(out, "grid.png"))
  return paths + [os.path.join(out, "chains.jsonl"), os.path.join(out, "grid.png")]


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  config = _CONFIG.value
  generator, params, vq_params = generator_from_checkpoint(_CHECKPOINT.value, config, _TOKENIZER.value)
  seed = config.get("seed", 0) if _SEED.value is None else _SEED.value
  t0 = time.perf_counter()
  samples = generator.generate(params, vq_params, _PROMPTS.value, _NUM_SAMPLES.value, jax.random.key(seed))
  seconds = time.perf_counter() - t0
  write_outputs(samples, _OUT.value, _NUM_SAMPLES.value)
  for s in samples:
    print(f"[{s.prompt}] {len(s.objects)} boxes{' (chain capped)' if s.chain_capped else ''}: {s.chain[:120]!r}")
  print(f"Wrote {len(samples)} images, chains.jsonl and grid.png to {_OUT.value} "
        f"({seconds:.1f} s for generation, compiles included).")


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint", "prompt", "out"])
  config_lib.run_tool(main)
