"""How well a judge agrees with ShapesWorld's exact oracle: Spearman and Kendall per GoT-R1 reward.

  python tools/judge_fidelity.py                          # the shipped judge, 240 held-out samples
  python tools/judge_fidelity.py --judge DIR --num 600 --config configs/shapes_demo.py --out runs/fidelity
  python tools/judge_fidelity.py --pool runs/judge_pool_heldout.npz   # on a policy's own samples

The sample (eval/judge_fidelity.py): val prompts (the judge trained on train prompts), chains and
images each corrupted with probability 0.6 so that every quality occurs, images passed through the
shipped VQ (as the policy's are) unless --novq. Each sample is scored by the judge through the real
reward path (JudgeRewardModel, the config's reward block) and by the oracle; the table gives the
rank correlations and means per reward and for the combined reward. GoT-R1's Qwen2.5-VL-7B judge
scored rho = 0.34 against humans (GOT_R1_FACTS.md); here the reference is exact. A last line,
"R_RI boxes", says whether the judge's grounding boxes lie where the objects are
(eval/judge_fidelity.grounding_localisation): their centres' correlation with the objects' and
their error beside that of always answering the image's centre. With --reading two more lines ask
what the judge sees with no object named (eval/judge_fidelity.caption_reading, naming_reading): the
caption question about each image (are its boxes where the objects are, are their labels right,
read off the nearest box and off boxes paired one-to-one with the objects at IoU >= 0.5?)
and the name of one object shown alone (colour, shape, texture), placed anywhere and then in the
middle (where a config.judge.naming_place_schedule holds them first); for judges trained with
config.judge.caption_fraction / naming_fraction.
"""
import json
import logging
import os
import sys
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.eval import judge_fidelity as jf  # noqa: E402
from gotr1_jax.pretrain.judge_data import PolicyPool  # noqa: E402
from gotr1_jax.rl.shapes_world import judge_reward_model, shipped_checkpoint  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_lib.define_config_file("config", os.path.join(_ROOT, "configs", "shapes_demo.py"),
                                        "A run config whose `reward` block (and judge_generation) is used.")
_JUDGE = flags.DEFINE_string("judge", None, "Judge checkpoint directory (default: the shipped judge).")
_VQ = flags.DEFINE_string("vq", None, "VQ checkpoint for the images' round trip (default: the shipped VQ).")
_NOVQ = flags.DEFINE_boolean("novq", False, "Use the rendered images as they are.")
_NUM = flags.DEFINE_integer("num", 240, "Samples (spread over the six categories).")
_SEED = flags.DEFINE_integer("seed", 0, "Sample seed.")
_BATCH = flags.DEFINE_integer("batch", 64, "Samples per judge call.")
_POOL = flags.DEFINE_string("pool", None, "Score a policy's own samples instead (tools/make_judge_pool.py).")
_OUT = flags.DEFINE_string("out", None, "Write fidelity.json here too.")
_READING = flags.DEFINE_boolean("reading", False, "Also ask the caption and naming questions (judges trained "
                                "with them) and print what the judge sees with no object named.")


def vq_round_trip(path: str):
  from gotr1_jax.models.vq import VQModel
  from gotr1_jax.pretrain import shipped
  from gotr1_jax.pretrain.vq_train import image_roundtrip
  vq_config, vq_params = shipped.load_vq(path)
  model = VQModel(vq_config)
  return image_roundtrip(model, vq_params)


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  config = _CONFIG.value
  t0 = time.perf_counter()
  # The VQ round trip for the rendered sample's images and (--reading) the lone objects'; a pool's are as stored.
  needs_vq = not _NOVQ.value and (not _POOL.value or _READING.value)
  transform = vq_round_trip(_VQ.value or shipped_checkpoint("vq")) if needs_vq else None
  if _POOL.value:
    sample = jf.pool_sample(PolicyPool.load(_POOL.value))
  else:
    sample = jf.fidelity_sample(_NUM.value, seed=_SEED.value, image_transform=transform)
  model = judge_reward_model(config, _JUDGE.value or "")
  result = jf.judge_fidelity(model, sample, config.reward, batch_size=_BATCH.value)
  judge_dir = _JUDGE.value or config.reward.get("judge_checkpoint", "") or shipped_checkpoint("judge")
  what = f"samples of {_POOL.value}" if _POOL.value else "held-out samples"
  print(f"Judge {judge_dir} vs the oracle on {result['n']} {what} ({time.perf_counter() - t0:.0f} s):\n")
  print(jf.format_fidelity(result))
  print("\nCounters: " + ", ".join(f"{k} {int(v)}" for k, v in sorted(result["counters"].items())))
  result["localisation"] = jf.grounding_localisation(model, sample, batch_size=_BATCH.value)
  print(jf.format_localisation(result["localisation"]))
  if _READING.value:
    result["caption"] = jf.caption_reading(model, sample, batch_size=_BATCH.value)
    for key, spread in (("naming", 1.0), ("naming_centred", 0.0)):
      result[key] = jf.naming_reading(model, seed=_SEED.value, batch_size=_BATCH.value, image_transform=transform,
                                      spread=spread)
    print(jf.format_reading(result["caption"], result["naming"], result["naming_centred"]))
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    with open(os.path.join(_OUT.value, "fidelity.json"), "w") as f:
      json.dump(dict(result, judge=judge_dir), f, indent=2)


if __name__ == "__main__":
  config_lib.run_tool(main)
