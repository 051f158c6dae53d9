"""Evaluates a Janus policy on ShapesWorld with the exact oracle: a T2I-CompBench-style table.

  python tools/evaluate.py --checkpoint gotr1_jax/assets/checkpoints/policy --split val
  python tools/evaluate.py --config configs/shapes_pretrain.py:seed=1 --checkpoint DIR --split test --out runs/eval

  python tools/evaluate.py --run_config configs/shapes_demo.py --workdir runs/shapes_demo \
      --compare runs/eval/policy_val/summary.json                  # a GRPO run's policy against the SFT one

Samples K (chain, image) pairs per prompt for the first N prompts of each category's split file
(config.eval: prompts_per_category, num_samples, generation settings), scores each image with the
oracle, and prints per-category scores plus chain quality (fraction of valid chains, chain -> image
box IoU, the four exact GoT-R1 rewards), then where the category scores are lost: per category, of
the objects the prompts ask for, how many the chains plan and what the oracle reads of each in the
images (read with every attribute, another shape, another colour or texture, not found), beside the
oracle's score of the VQ's round trip of --vq_scenes true scenes per prompt (what a policy that drew
true scenes' codes would score: a practical ceiling, not a bound). Then, with --reliance_batches
above 0, how much the policy draws from its chain (pretrain/chain_reliance.py: image NLL of val
scenes with the true text, the shape or colour words permuted, the chains rolled). Writes
summary.json, samples.jsonl and grid.png to --out. With --workdir it evaluates the newest policy of
a GRPO run (LoRA merged into the run's starting policy; --run_config is the config the run was
trained with; of a run in stages, its last stage's policy). With --compare it also prints this
evaluation beside an earlier summary.json made with the same prompts and seeds, each change with its
95% paired-bootstrap interval (eval/paired.py): more samples than a run's own report evaluates, when
a change is too small for that report to tell from noise. On a CPU host it samples on one XLA device
per core (gotr1_jax/host_devices.py), each chunk spread over the devices that divide it; the same
samples as one device draws.
"""
import json
import logging
import os
import sys
import time

from absl import flags
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import host_devices  # noqa: E402

host_devices.split_cpu()  # before jax is imported: one XLA CPU device per core for the data axis
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
from configs import shapes_pretrain  # noqa: E402
from gotr1_jax import config_lib, parallel  # noqa: E402
from gotr1_jax.eval import paired, shapes_eval  # noqa: E402
from gotr1_jax.metrics import image_grid  # noqa: E402
from gotr1_jax.pretrain import sft_policy, vq_train  # noqa: E402
from gotr1_jax.rl.report import grid_rows  # noqa: E402
from gotr1_jax.sampling.janus_generate import generator_from_checkpoint  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_lib.define_config_file("config", os.path.join(_ROOT, "configs", "shapes_pretrain.py"),
                                        "A config with an `eval` block (file.py[:args]).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", os.path.join(_ROOT, "gotr1_jax", "assets", "checkpoints", "policy"),
                                  "Janus policy directory (Flax or torch layout).")
_SPLIT = flags.DEFINE_enum("split", "val", ["train", "val", "test"], "Prompt split.")
_RELIANCE = flags.DEFINE_integer("reliance_batches", 6, "Val batches (config.policy.batch_size scenes each) for "
                                 "the chain-reliance NLLs; 0 skips them.")
_VQ_SCENES = flags.DEFINE_integer("vq_scenes", 2, "True scenes per prompt whose VQ round trip the oracle scores, "
                                  "per category: what a policy that drew true scenes' codes would score (0 skips).")
_OUT = flags.DEFINE_string("out", None, "Output directory (default runs/eval/<checkpoint name>_<split>).")
_RUN_CONFIG = config_lib.define_config_file("run_config", None, "With --workdir: the config the GRPO run was "
                                            "trained with (file.py[:args]).")
_WORKDIR = flags.DEFINE_string("workdir", "", "A GRPO run directory: evaluate its newest policy instead of "
                               "--checkpoint (needs --run_config).")
_COMPARE = flags.DEFINE_string("compare", "", "An earlier summary.json (same --config eval block and --split) to "
                               "print beside this one, with paired intervals of the changes.")


def load_policy(checkpoint: str, generation, run_config, workdir: str):
  """(generator, params, vq params, name): the Janus checkpoint, or with `workdir` the newest policy of a
  GRPO run (its LoRA merged into the run's starting policy)."""
  if not workdir:
    return (*generator_from_checkpoint(checkpoint, dict(generation=generation)), checkpoint)
  if run_config is None:
    raise ValueError("--workdir needs --run_config, the config the run was trained with "
                     "(e.g. --run_config configs/shapes_demo.py).")
  from gotr1_jax.rl.export import trained_janus
  from gotr1_jax.rl.stages import final_stage
  run_config, workdir = final_stage(run_config, workdir)  # a run in stages ends with its last stage's policy
  generator, params, vq_params, step = trained_janus(run_config, workdir, generation)
  return generator, params, vq_params, f"{workdir} (step {step})"


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  e = _CONFIG.value.eval
  generator, params, vq_params, name = load_policy(_CHECKPOINT.value, e.generation, _RUN_CONFIG.value, _WORKDIR.value)
  specs = shapes_eval.eval_prompts(_SPLIT.value, int(e.prompts_per_category))
  earlier = (paired.load_comparison(_COMPARE.value, _SPLIT.value, int(e.seed), [s.category for s in specs],
                                    int(e.num_samples))
             if _COMPARE.value else None)  # checked before the minutes of sampling
  t0 = time.perf_counter()
  # The models' logical `batch` axis spreads each chunk over the devices that divide it (one per core
  # on a CPU host); the samples are those one device draws.
  mesh = parallel.batch_mesh(int(e.batch_prompts) * int(e.num_samples))
  params, vq_params = jax.device_put((params, vq_params), parallel.replicated(mesh))  # a run's may span others
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(parallel.logical_rules(config_lib.LOGICAL_AXIS_RULES)):
    result = shapes_eval.evaluate(generator, params, vq_params, specs, int(e.num_samples),
                                  jax.random.key(int(e.seed)), batch_prompts=int(e.batch_prompts))
  seconds = time.perf_counter() - t0
  summary = result.summary()
  ceiling = (vq_train.roundtrip_scores(generator.vq_model, vq_params, specs, _VQ_SCENES.value, int(e.seed))
             if _VQ_SCENES.value > 0 else None)
  reliance = {}
  if _RELIANCE.value > 0:
    # The SFT example settings (text length, batch size); a config without them gets the shipped ones.
    policy_config = _CONFIG.value.get("policy", None) or shapes_pretrain.policy_config(1.0)
    reliance = sft_policy.measure_chain_reliance(generator, params, vq_params, policy_config, _RELIANCE.value,
                                                 int(e.seed))
  source = _WORKDIR.value or _CHECKPOINT.value
  out = _OUT.value or os.path.join("runs", "eval", f"{os.path.basename(os.path.normpath(source))}_{_SPLIT.value}")
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(dict(summary, reliance=reliance, vq_roundtrip=ceiling, checkpoint=name, split=_SPLIT.value,
                   seed=int(e.seed), seconds=seconds), f, indent=2)
  with open(os.path.join(out, "samples.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in result.records)
  k = int(e.num_samples)
  idx = grid_rows(len(specs), k, int(e.grid_prompts))
  Image.fromarray(image_grid([result.images[i] for i in idx], ncols=k)).save(os.path.join(out, "grid.png"))
  print(f"{name} on ShapesWorld {_SPLIT.value}: {len(specs)} prompts x {k} samples "
        f"({seconds:.0f} s)\n")
  print(shapes_eval.format_table([(_SPLIT.value, summary)]))
  if earlier is not None:
    print(f"\nAgainst {_COMPARE.value} ({earlier.get('checkpoint', '?')}); the interval is a 95% paired bootstrap "
          "over the prompts (eval/paired.py):\n")
    print(shapes_eval.format_table([("earlier", earlier), ("this", summary)],
                                   intervals=paired.change_intervals(earlier, summary)))
  print(f"\n{shapes_eval.OBJECTS_CAPTION}:\n")
  print(shapes_eval.format_object_table(summary["objects"], ceiling))
  if reliance:
    print("\nImage NLL of val scenes (nats per code; higher when the edited text no longer matches the image):")
    print(" | ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in reliance.items()))
  print(f"\nWrote summary.json, samples.jsonl and grid.png to {out}.")


if __name__ == "__main__":
  config_lib.run_tool(main)
