"""Can a judge config learn where things are in its image? Trains eval/localisation_probe.py's task.

  python tools/probe_localisation.py                                   # the shipped judge's config
  python tools/probe_localisation.py --config.judge.model.lm.rope_theta=10 --steps 1500
  python tools/probe_localisation.py --axis row --max_filler 8 --config.judge.images_first=false
  python tools/probe_localisation.py --distractors 2      # name the target among three squares
  python tools/probe_localisation.py --distractors 2 --schedule staged   # 0, then 1, then 2 distractors
  python tools/probe_localisation.py --axis present --distractors 1     # is a square of the named colour there?
  python tools/probe_localisation.py --axis present --aux naming        # every other batch: name a square's colour

A fresh model of config.judge.model (configs/shapes_pretrain.py:judge=plain, the judge recipe the
probe runs of docs/shapes_findings.md used, unless --config says otherwise)
learns which column (or row) of its LM token grid holds one square, or (--axis present) whether a
square of the named colour is in the image. Every --log_every steps it prints the digit's loss and
accuracy beside chance and beside a uniform pick among the squares (what a model scores that finds
the squares but not the named one); a model that stays at chance cannot localise.
0.5–1 s a step at the shipped judge's size on a 2-core CPU shared with other runs (1,500 steps: 12–26 min).
"""
import json
import logging
import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.eval import localisation_probe  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_lib.define_config_file("config", os.path.join(_ROOT, "configs", "shapes_pretrain.py:judge=plain"),
                                        "A config whose `judge` block gives the model, image size and optimizer.")
_STEPS = flags.DEFINE_integer("steps", 1500, "Training steps.")
_AXIS = flags.DEFINE_enum("axis", "column", list(localisation_probe.AXES), "What the question asks.")
_SEED = flags.DEFINE_integer("seed", 0, "Init and data seed.")
_DISTRACTORS = flags.DEFINE_integer("distractors", 0, "Other squares in each image; the question then names "
                                    "the target's colour.")
_SCHEDULE = flags.DEFINE_enum("schedule", "fixed", list(localisation_probe.SCHEDULES),
                              "Distractors per batch: always --distractors (fixed), drawn from 0..N (mixed), or "
                              "0, 1, .., N in equal stages over the run (staged).")
_VOCAB = flags.DEFINE_integer("vocab_size", 400, "The probe tokenizer's vocabulary: 400 makes every word one token, "
                              "as the judge's tokenizer does; 300 spells most words in characters.")
_FILLER = flags.DEFINE_integer("max_filler", 0, "Questions get 0..N filler sentences, so the answer's distance to "
                               "the image varies as a judge's does.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Steps per printed row.")
_AUX = flags.DEFINE_enum("aux", "none", list(localisation_probe.AUX), "An auxiliary task on every other batch: "
                        "naming a lone square's colour (its answer needs the image alone).")
_OUT = flags.DEFINE_string("out", None, "Write probe.json (the rows) here too.")


def _print_row(r: dict) -> None:
  loss, acc, most, pick, aux, c_loss, c_acc = ("-" if r[k] is None else f"{r[k]:.3f}" for k in (
      "loss", "acc", "acc_most", "pick_most", "acc_aux", "chance_loss", "chance_acc"))
  print(f"| {r['step']} | {loss} | {acc} | {most} | {pick} | {aux} | {c_loss} / {c_acc} |", flush=True)


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  judge = _CONFIG.value.judge
  print(f"Localisation probe ({_AXIS.value}), judge model: LM rope_theta {judge.model.lm.rope_theta}, "
        f"mrope_section {tuple(judge.model.lm.mrope_section)}, image {judge.image_size} px, "
        f"0..{_FILLER.value} filler sentences, {_DISTRACTORS.value} distractors ({_SCHEDULE.value}), "
        f"the image {'before' if judge.images_first else 'after'} the question, auxiliary task: {_AUX.value}")
  print("| step | loss (digit) | accuracy | accuracy with the most distractors | a pick among their squares | "
        "naming (--aux) | chance: loss / accuracy |\n|---|---|---|---|---|---|---|")
  rows = localisation_probe.run_probe(
      judge, _STEPS.value, axis=_AXIS.value, seed=_SEED.value, log_every=_LOG_EVERY.value,
      max_filler=_FILLER.value, distractors=_DISTRACTORS.value, schedule=_SCHEDULE.value,
      vocab_size=_VOCAB.value, aux=_AUX.value, on_log=_print_row)
  last = next(r for r in reversed(rows) if r["acc"] is not None)  # not a row of naming batches only
  final = last["acc"] if last["acc_most"] is None else last["acc_most"]
  task = "to find the named colour" if _AXIS.value == "present" else "to localise"
  print(f"\n{'Learned' if final >= 0.9 else 'Did not learn'} {task}: accuracy {final:.3f} over the last "
        f"{_LOG_EVERY.value} steps' batches with {_DISTRACTORS.value} distractors (chance {last['chance_acc']:.3f}).")
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    with open(os.path.join(_OUT.value, "probe.json"), "w") as f:
      json.dump(dict(rows=rows, axis=_AXIS.value, max_filler=_FILLER.value, distractors=_DISTRACTORS.value,
                     schedule=_SCHEDULE.value, vocab_size=_VOCAB.value, aux=_AUX.value,
                     config=judge.model.to_dict()), f, indent=2)


if __name__ == "__main__":
  config_lib.run_tool(main)
