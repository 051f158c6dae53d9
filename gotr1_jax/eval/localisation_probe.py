"""Whether a judge's architecture can learn *where* things are in its image: a synthetic probe.

Owns one small supervised task and the loop that trains it. The image is light grey with one
filled square of a random colour and size at a random place; the question asks which column (or
row) of the judge's LM token grid holds the square's centre; the answer is that index, one digit.
It holds what grounding needs (find the object, read where it is) and nothing else: no coordinates
to spell, and other objects and a name only when asked for (`distractors`, all at once or in a
curriculum: `schedule`). The "present" axis asks the other half of grounding alone: is a square
of the named colour in the image (1) or not (0), place unasked. A fresh model of the judge's
config (config.judge of configs/shapes_pretrain.py) learns it with the judge's loss
(pretrain/judge_train.py), scored on the digit only, and the loop reports that loss and the
digit's accuracy beside chance (the entropy of the answers, and the most common answer's share)
and beside what a model scores that finds every square but not the named one (a uniform pick
among the squares drawn). A config that cannot learn this cannot ground boxes, whatever its data.

A question whose answer hangs on the name *and* the image together gives a fresh model no gradient
towards reading either alone, and it stays at chance. `aux="naming"` trains every other batch on
naming the colour of a lone square, whose answer follows from the image alone; that is what lets
the model start. tools/probe_localisation.py runs it.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import numpy as np
from flax.training.train_state import TrainState
from ml_collections import ConfigDict

from gotr1_jax.data.qwen_chat import IM_END, build_qwen_tokenizer, render_chat
from gotr1_jax.models.qwen_image_processing import QwenImageConfig
from gotr1_jax.models.qwen_vl import QwenVL, init_qwen_vl
from gotr1_jax.pretrain.judge_data import JudgeExample
from gotr1_jax.pretrain.judge_train import generation_config, judge_batch, judge_model_config, make_judge_train_step
from gotr1_jax.rl.optimizer import make_optimizer
from gotr1_jax.sampling.qwen_vl import QwenVLGenerator

POSITION_AXES = ("column", "row")
AXES = POSITION_AXES + ("present",)  # present: is a square of the named colour in the image? 1 or 0
# How many distractors a batch gets: always the most; a uniform draw from 0..most per batch; or
# 0, 1, .., most in equal stages over the run (a curriculum: place first, then names).
SCHEDULES = ("fixed", "mixed", "staged")
BACKGROUND = 230
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 170, 30), "yellow": (200, 160, 0),
           "purple": (150, 40, 170)}
FILLER = " Look closely."
AUX = ("none", "naming")  # an auxiliary task on every other batch (module docstring)
NAMING_QUESTION = "What colour is the square in the image? Answer in one word."


def question(axis: str, filler: int = 0, colour: str = "") -> str:
  """The probe's question, with `filler` sentences that say nothing, which move the answer further
  from the image (a judge's questions differ in length, so its answer's distance to the image does),
  and with the square's colour named when other squares are about (always, for "present")."""
  if axis == "present":
    return f"Is there a {colour} square in the image?{FILLER * filler} Answer 1 for yes or 0 for no."
  square = f"the {colour} square" if colour else "the square"
  return f"Which {axis} of the image holds {square}?{FILLER * filler} Answer one digit."


def _square(rng: np.random.Generator, image_size: int, cell: int) -> tuple[int, int, int]:
  side = int(rng.integers(cell * 3 // 4, 2 * cell))
  x, y = (int(v) for v in rng.integers(0, image_size - side + 1, 2))
  return x, y, side


class ProbeDraw(NamedTuple):
  """One drawn probe question (probe_example)."""
  example: JudgeExample
  answer: int  # the digit: the target's cell index along the axis, or 1/0 for "present"
  pick: float  # expected accuracy of a model that finds every square but not the named one


def _present_example(rng: np.random.Generator, image_size: int, cell: int, max_filler: int,
                     distractors: int) -> ProbeDraw:
  """distractors + 1 squares of different colours; the question names one of them or, half the time,
  a colour not drawn. A model blind to the name is right half the time."""
  if not 0 <= distractors < len(COLOURS) - 1:
    raise ValueError(f"distractors={distractors} must be in [0, {len(COLOURS) - 2}] for axis='present' (one "
                     f"colour per square, and one left over to ask about).")
  image = np.full((image_size, image_size, 3), BACKGROUND, np.uint8)
  names = list(COLOURS)
  picked = [names[int(i)] for i in rng.choice(len(names), distractors + 2, replace=False)]
  for name in picked[:-1]:
    x, y, side = _square(rng, image_size, cell)
    image[y:y + side, x:x + side] = COLOURS[name]
  present = bool(rng.random() < 0.5)
  filler = int(rng.integers(max_filler + 1)) if max_filler else 0
  text = question("present", filler, picked[-2] if present else picked[-1])
  return ProbeDraw(JudgeExample("probe", text, image, str(int(present))), int(present), 0.5)


def probe_example(rng: np.random.Generator, image_size: int, cell: int, axis: str, max_filler: int = 0,
                  distractors: int = 0, named: bool = False) -> ProbeDraw:
  """One image and question (0..max_filler filler sentences): the example, its answer as an int (the
  `axis` index of the cell x cell block holding the square's centre) and the pick chance (the share
  of the squares drawn whose centre is in that cell). With distractors, that many squares of other
  colours are drawn first and the question names the target's colour, as a judge's grounding
  question names one of several objects; `named` names it without any. Axis "present" asks whether
  a named colour is drawn instead (_present_example)."""
  if axis not in AXES:
    raise ValueError(f"axis={axis!r} must be one of {AXES}.")
  if axis == "present":
    return _present_example(rng, image_size, cell, max_filler, distractors)
  if not 0 <= distractors < len(COLOURS):
    raise ValueError(f"distractors={distractors} must be in [0, {len(COLOURS) - 1}] (one colour per square).")
  image = np.full((image_size, image_size, 3), BACKGROUND, np.uint8)
  names = list(COLOURS)
  along = 0 if axis == "column" else 1
  centres = []
  if distractors:
    picked = [names[int(i)] for i in rng.choice(len(names), distractors + 1, replace=False)]
    for name in picked[1:]:
      x, y, side = _square(rng, image_size, cell)
      image[y:y + side, x:x + side] = COLOURS[name]
      centres.append(((x, y)[along] + side // 2) // cell)
    colour = picked[0]
  x, y, side = _square(rng, image_size, cell)
  if not distractors:
    colour = names[int(rng.integers(len(names)))]
  image[y:y + side, x:x + side] = COLOURS[colour]
  index = ((x, y)[along] + side // 2) // cell
  pick = (1 + centres.count(index)) / (1 + len(centres))
  filler = int(rng.integers(max_filler + 1)) if max_filler else 0
  text = question(axis, filler, colour if distractors or named else "")
  return ProbeDraw(JudgeExample("probe", text, image, str(index)), index, pick)


def chance(answers: np.ndarray, cells: int) -> tuple[float, float]:
  """(entropy in nats, most common answer's share) of the answers: a model blind to position does
  no better than either."""
  p = np.bincount(answers, minlength=cells) / len(answers)
  return float(-sum(q * math.log(q) for q in p if q > 0)), float(p.max())


def probe_tokenizer(axis: str, images_first: bool = True, named: bool = False, vocab_size: int = 400,
                    aux: str = "none"):
  """A tokenizer for the probe's texts only (the probe trains from scratch, so it needs no other);
  `named`: also the questions that name a colour (with distractors). At the default 400 every word
  is one token, as in the judge's tokenizer (" red", " square"); at 300 most words are spelled in
  characters, so naming the target's colour also asks the model to read it from its letters. Questions
  of axis "present" always name a colour."""
  questions = [question(axis, 0, c) for c in COLOURS] if named or axis == "present" else [question(axis)]
  texts = [render_chat(None, q, 1, images_first) + str(d) + IM_END for q in questions for d in range(10)] * 2
  if aux == "naming":
    texts += [render_chat(None, NAMING_QUESTION, 1, images_first) + c + IM_END for c in COLOURS] * 4
  return build_qwen_tokenizer(texts, vocab_size=vocab_size)


def naming_example(rng: np.random.Generator, image_size: int, cell: int) -> JudgeExample:
  """The auxiliary question (AUX "naming"): one square; the answer is its colour's name."""
  d = probe_example(rng, image_size, cell, "column", named=True)
  colour = next(c for c in COLOURS if f"the {c} square" in d.example.text)
  return JudgeExample("probe", NAMING_QUESTION, d.example.image, colour)


def _answer_only(weight: np.ndarray) -> np.ndarray:
  """judge_batch's loss weight keeps the answer and the closing <|im_end|>; keep the digit only."""
  out = np.zeros_like(weight)
  out[np.arange(len(weight)), weight.argmax(1)] = 1.0
  return out


def check_schedule(schedule: str) -> None:
  if schedule not in SCHEDULES:
    raise ValueError(f"schedule={schedule!r} must be one of {SCHEDULES}.")


def distractor_count(schedule: str, most: int, step: int, steps: int, rng: np.random.Generator) -> int:
  """Distractors in the batch of `step` (0-based) of `steps` under `schedule` (SCHEDULES)."""
  check_schedule(schedule)
  if schedule == "fixed":
    return most
  if schedule == "mixed":
    return int(rng.integers(most + 1))
  return min(most, step * (most + 1) // steps)  # staged


def run_probe(judge: ConfigDict, steps: int, axis: str = "column", seed: int = 0, log_every: int = 50,
              max_filler: int = 0, distractors: int = 0, schedule: str = "fixed", vocab_size: int = 400,
              aux: str = "none", on_log: Optional[Callable[[dict], None]] = None) -> list[dict]:
  """Trains a fresh model of `judge.model` (at judge.image_size, batch judge.batch_size, judge.optimizer)
  on the probe for `steps` steps, questions with 0..max_filler filler sentences, images with up to
  `distractors` other squares per batch as `schedule` says (the question names the target's colour
  whenever distractors > 0), texts in probe_tokenizer(vocab_size)'s tokens; with aux="naming" every
  even step (0, 2, ..) is a batch of naming_example instead. Returns one row per `log_every` steps:
  step, loss and accuracy of the digit averaged over those steps' probe batches, acc_aux (the naming
  batches' accuracy on the colour word's first token; None without aux), acc_most
  (accuracy over those steps' batches with the most distractors; None if none had), pick_most (what a
  uniform pick among the squares drawn scores on those batches: a model that finds the squares but
  not the named one), and chance_loss / chance_acc over all the examples of those steps (each None
  where those steps had no such batch)."""
  check_schedule(schedule)  # before anything is built or compiled
  if aux not in AUX:
    raise ValueError(f"aux={aux!r} must be one of {AUX}.")
  gen_cfg = generation_config(judge)
  tokenizer = probe_tokenizer(axis, gen_cfg.images_first, named=distractors > 0, vocab_size=vocab_size, aux=aux)
  model_cfg = judge_model_config(judge, len(tokenizer))
  model = QwenVL(model_cfg)
  size = int(judge.image_size)
  cell = model_cfg.vision.patch_size * model_cfg.vision.spatial_merge_size
  if size % cell or size // cell > 10:
    raise ValueError(f"judge.image_size={size} must be a multiple of the LM token's {cell} px and at most "
                     f"{10 * cell} px (the answer is one digit).")
  generator = QwenVLGenerator(model, None, tokenizer, gen_cfg,
                              QwenImageConfig(min_pixels=size * size, max_pixels=size * size))
  params = nn.unbox(init_qwen_vl(model_cfg, jax.random.key(seed)))
  state = TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(judge.optimizer, steps))
  step_fn = jax.jit(make_judge_train_step(model), donate_argnums=0)
  rng = np.random.default_rng(seed)
  batch_size, buckets = int(judge.batch_size), tuple(judge.length_buckets)

  def train_on(examples: list) -> dict:
    nonlocal state
    batch = judge_batch(generator, examples, buckets, int(judge.patch_bucket))
    batch["loss_weight"] = _answer_only(batch["loss_weight"])
    state, metrics = step_fn(state, batch)
    return metrics

  def mean(xs: list) -> Optional[float]:
    return float(np.mean(jax.device_get(xs))) if xs else None

  rows, losses, accs, accs_most, picks_most, answers, accs_aux = [], [], [], [], [], [], []
  for step in range(steps):
    if aux == "naming" and step % 2 == 0:
      accs_aux.append(train_on([naming_example(rng, size, cell) for _ in range(batch_size)])["train/answer_token_acc"])
    else:
      count = distractor_count(schedule, distractors, step, steps, rng)
      drawn = [probe_example(rng, size, cell, axis, max_filler, count, named=distractors > 0)
               for _ in range(batch_size)]
      metrics = train_on([d.example for d in drawn])
      losses.append(metrics["loss/loss"])
      accs.append(metrics["train/answer_token_acc"])
      if count == distractors:
        accs_most.append(metrics["train/answer_token_acc"])
        picks_most += [d.pick for d in drawn]
      answers += [d.answer for d in drawn]
    if (step + 1) % log_every == 0 or step + 1 == steps:
      entropy, top = chance(np.array(answers), size // cell) if answers else (None, None)
      row = dict(step=step + 1, loss=mean(losses), acc=mean(accs), acc_aux=mean(accs_aux), acc_most=mean(accs_most),
                 pick_most=mean(picks_most), chance_loss=entropy, chance_acc=top)
      rows.append(row)
      if on_log is not None:
        on_log(row)
      losses, accs, accs_most, picks_most, answers, accs_aux = [], [], [], [], [], []
  return rows
