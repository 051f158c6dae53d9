"""Scores existing images with the GoT-R1 judge: a CSV per image and a summary table per category.

  python tools/score.py --prompts gotr1_jax/assets/shapes_world/prompts/spatial_val.txt --images samples/
  python tools/score.py --judge ckpt/qwen2.5-vl-7b-flax --config configs/shapes_demo.py:reward=gotr1 \
      --prompts T2I-CompBench/examples/dataset/spatial_val.txt --images outputs/spatial/ --out scores/

--prompts is a T2I-CompBench prompt file (one prompt per line; the category is the file name's part
before the first '_'). --images holds either tools/generate.py's output (chains.jsonl beside the
PNGs: all four rewards, the chain's boxes included) or T2I-CompBench-style samples named
'<prompt>_<k>.png' (no chains: R_PI only). The judge is --judge (a Flax or transformers Qwen2.5-VL
directory; default the config's reward.judge_checkpoint, i.e. ShapesWorld's shipped judge) and sees
images at the config's reward.judge_image_size. Unreadable answers score 0 and are counted.
"""
import csv
import json
import logging
import os
import sys
from collections import defaultdict

import numpy as np
from absl import flags
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.rewards.judge import RewardBatch  # noqa: E402
from gotr1_jax.rl.shapes_world import judge_reward_model  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_lib.define_config_file("config", os.path.join(_ROOT, "configs", "shapes_demo.py"),
                                        "A run config whose `reward` block (and judge_generation) is used.")
_JUDGE = flags.DEFINE_string("judge", None, "Judge checkpoint directory (default: the config's).")
_PROMPTS = flags.DEFINE_string("prompts", None, "T2I-CompBench prompt file (one prompt per line).")
_IMAGES = flags.DEFINE_string("images", None, "Directory of images (tools/generate.py output or <prompt>_<k>.png).")
_OUT = flags.DEFINE_string("out", None, "Output directory (default: --images).")
_BATCH = flags.DEFINE_integer("batch", 32, "Images per judge call.")


def read_prompts(path: str) -> list[str]:
  """Non-empty, stripped lines; empty lines are skipped (and reported)."""
  with open(path, encoding="utf-8") as f:
    lines = [line.strip() for line in f]
  prompts = [p for p in lines if p]
  if len(prompts) < len(lines):
    print(f"Skipped {len(lines) - len(prompts)} empty line(s) of {path}.")
  if not prompts:
    raise SystemExit(f"{path} holds no prompts.")
  return prompts


def find_samples(images_dir: str, prompts: list[str]) -> list[dict]:
  """[{prompt, image (path), chain or None}] for the prompts of the file that have images."""
  wanted = set(prompts)
  jsonl = os.path.join(images_dir, "chains.jsonl")
  if os.path.exists(jsonl):
    with open(jsonl) as f:
      records = [json.loads(line) for line in f if line.strip()]
    return [dict(prompt=r["prompt"], image=os.path.join(images_dir, r["image"]), chain=r["chain"])
            for r in records if r["prompt"] in wanted]
  out = []
  for name in sorted(os.listdir(images_dir)):
    stem, ext = os.path.splitext(name)
    prompt = stem.rsplit("_", 1)[0]
    if ext.lower() in (".png", ".jpg", ".jpeg") and prompt in wanted:
      out.append(dict(prompt=prompt, image=os.path.join(images_dir, name), chain=None))
  return out


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  config = _CONFIG.value
  category = os.path.basename(_PROMPTS.value).split("_", 1)[0]
  samples = find_samples(_IMAGES.value, read_prompts(_PROMPTS.value))
  if not samples:
    raise SystemExit(f"No images in {_IMAGES.value} match the prompts of {_PROMPTS.value} (expected chains.jsonl "
                     "from tools/generate.py or files named '<prompt>_<k>.png').")
  size = int(config.reward.judge_image_size)
  model = judge_reward_model(config, _JUDGE.value or "")
  rows, fails = [], defaultdict(float)
  for start in range(0, len(samples), _BATCH.value):
    chunk = samples[start:start + _BATCH.value]
    images = [np.asarray(Image.open(s["image"]).convert("RGB")) for s in chunk]
    if all(s["chain"] is not None for s in chunk):
      if len({im.shape for im in images}) > 1:
        images = [np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)) for im in images]
      out = model.score(RewardBatch(prompts=[s["prompt"] for s in chunk], chains=[s["chain"] for s in chunk],
                                    images=np.stack(images), group_size=1))
      for k, v in out.items():
        if np.ndim(v) == 0:
          fails[k] += float(v)
      scores = [{k: float(out[k][i]) for k in ("r_sem", "r_spa", "r_ri", "r_pi", "reward")} for i in range(len(chunk))]
    else:
      r_pi, n_fail = model.score_prompt_image([s["prompt"] for s in chunk], images)
      fails["parse_fail/r_pi"] += n_fail
      scores = [{"r_pi": float(v)} for v in r_pi]
    rows += [dict(prompt=s["prompt"], image=os.path.basename(s["image"]), category=category, **sc)
             for s, sc in zip(chunk, scores)]
  out_dir = _OUT.value or _IMAGES.value
  os.makedirs(out_dir, exist_ok=True)
  columns = ["prompt", "image", "category"] + [k for k in ("r_sem", "r_spa", "r_ri", "r_pi", "reward") if k in rows[0]]
  with open(os.path.join(out_dir, f"scores_{category}.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, columns)
    w.writeheader()
    w.writerows(rows)
  print(f"| category | images | " + " | ".join(columns[3:]) + " |")
  print("|---|---|" + "---|" * len(columns[3:]))
  means = [f"{np.mean([r[k] for r in rows]):.3f}" for k in columns[3:]]
  print(f"| {category} | {len(rows)} | " + " | ".join(means) + " |")
  unreadable = [f"{k} {int(v)}" for k, v in fails.items() if k.startswith("parse")]
  print("Unreadable answers (scored 0): " + (", ".join(unreadable) or "none"))
  print(f"Wrote {os.path.join(out_dir, f'scores_{category}.csv')}.")


if __name__ == "__main__":
  flags.mark_flags_as_required(["prompts", "images"])
  config_lib.run_tool(main)
