"""The `reward` config block: its defaults and the one validator.

Owns every knob of the reward side (judge prompt version, answer bounds, box frame, layout canvas,
combination, hacking monitor). It computes no reward; the other modules read these fields.
"""
from __future__ import annotations

from typing import Any

from ml_collections import ConfigDict

COMPONENTS = ("r_sem", "r_spa", "r_ri", "r_pi")  # GOT_R1_FACTS.md §4, each rescaled to [0, 1]
KINDS = ("gotr1", "function")
COMBINES = ("product", "product_mean", "weighted_sum")
SCORE_READOUTS = ("greedy", "expected")
RI_QUESTIONS = ("ground", "caption")
BOX_FRAMES = ("auto", "pixels", "norm1000", "norm1")
BOX_COLOURS = ("palette", "named")
CANVAS_STYLES = ("outline", "filled")

# Box outline colours of the layout canvas, cycled over objects in chain order (unknown in the
# paper). Saturated, mutually distinct and dark enough to read on white; a user who wants plain
# black boxes sets canvas.palette = ((0, 0, 0),).
DEFAULT_PALETTE = (
    (230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180), (0, 128, 128),
    (240, 50, 230), (170, 110, 40), (0, 0, 128), (128, 128, 0), (128, 0, 0), (90, 90, 90),
)


def canvas_defaults() -> ConfigDict:
  """Layout canvas for R_spa (size and colours are not published; chosen here).

  448 x 448 is a multiple of Qwen2.5-VL's 28-pixel merge unit, so the judge sees it unresized.
  font: "bitmap" = Pillow's embedded bitmap font (no FreeType, pixel-identical on every machine),
  scaled up by the integer `font_scale` with nearest-neighbour; "truetype" = Pillow's embedded
  Aileron at `font_size` through FreeType (identical for the pinned Pillow wheel); any other value
  is a path to a .ttf/.otf file drawn at `font_size`.
  box_colours: "palette" = outline and name of object i in palette[i % len(palette)]; "named" = in
  the colour its name says when Pillow knows the word ("red circle" -> red; canvas.box_colours).
  style: "outline" = each box's outline with its name at the corner (GoT-R1's canvas); "filled" =
  each box filled in its colour, largest first so that no box hides a smaller one, and no names
  (a picture like a scene of coloured blocks, for a judge whose vision tower learnt scenes; with
  box_colours "named" the colours carry the names' colour words).
  """
  return ConfigDict(dict(
      width=448, height=448, background=(255, 255, 255), line_width=3, palette=DEFAULT_PALETTE,
      font="bitmap", font_scale=2, font_size=20, text_margin=2, box_colours="palette",
      style="outline"))


def monitor_defaults() -> ConfigDict:
  """Reward-hacking monitor: warn when, between the older and newer half of the last `window`
  steps, one component's mean rises by more than `rise` while another's falls by more than `fall`
  (both on the [0, 1] scale); and when a judge component gains more than `gap` on the oracle's exact
  version of it logged beside it (`oracle_<k>`, ShapesWorld), so that the judge and the truth part;
  each change counting only beyond `sigmas` standard errors of the window's per-step means (0: off)."""
  return ConfigDict(dict(window=20, rise=0.1, fall=0.1, gap=0.1, sigmas=3.0))


def reward_defaults() -> ConfigDict:
  """The `config.reward` block with GoT-R1's choices where published (GOT_R1_FACTS.md §4).

  kind: "gotr1" = the Qwen2.5-VL judge (JudgeRewardModel); "function" = a Python reward
    (FunctionRewardModel, e.g. the ShapesWorld oracle).
  combine: "product" (repo README), "product_mean" (paper v2, times r_aes if use_aesthetic),
    "weighted_sum" (weights normalised to sum 1).
  max_answer_tokens: judge answer bound per component (R_RI lists boxes, so it needs more).
  box_frame: how grounded boxes are read ("auto" guesses per answer; see parse.parse_boxes).
  judge_size_multiple: image sides the judge sees must be multiples of this (28 = Qwen2.5-VL's
    patch 14 x merge 2, so its processor does not resize again); 1 disables the check.
  score_readout: how R_sem, R_spa and R_PI are read: "greedy" parses the generated answer (GoT-R1);
    "expected" takes the mean score under the judge's digit probabilities (score_readout.py).
  ri_question: how R_RI's boxes are asked for: "ground" asks to locate each planned object by name
    (GoT-R1); "caption" asks once per image for every object, named and boxed, and grounds each
    planned object with the answered boxes whose label is its name (judge.py; for judges that read
    a scene better than they pick out a named object, docs/shapes_findings.md).
  """
  return ConfigDict(dict(
      kind="gotr1", combine="product",
      weights=dict(r_sem=1.0, r_spa=1.0, r_ri=1.0, r_pi=1.0),
      use_aesthetic=False, prompt_version="v1",
      max_answer_tokens=dict(r_sem=64, r_spa=64, r_ri=256, r_pi=64),
      box_frame="auto", judge_size_multiple=28, score_readout="greedy", ri_question="ground",
      canvas=canvas_defaults(), monitor=monitor_defaults()))


def _need(config: ConfigDict, field: str) -> Any:
  if field not in config:
    raise ValueError(f"config.reward.{field} is missing; start from "
                     "gotr1_jax.rewards.config.reward_defaults().")
  return config[field]


def _positive_int(value: Any, field: str) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"config.reward.{field}={value!r} must be a positive integer.")


def _rgb(value: Any, field: str) -> None:
  ok = (isinstance(value, (tuple, list)) and len(value) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in value))
  if not ok:
    raise ValueError(f"config.reward.{field}={value!r} must be an (r, g, b) triple of ints in [0, 255].")


def check_reward_config(config: ConfigDict) -> None:
  """Raises one ValueError naming the first wrong field of a `reward` block and how to fix it."""
  for field, allowed in (("kind", KINDS), ("combine", COMBINES), ("box_frame", BOX_FRAMES),
                         ("score_readout", SCORE_READOUTS)):
    if _need(config, field) not in allowed:
      raise ValueError(f"config.reward.{field}={config[field]!r} must be one of {allowed}.")
  if config.get("ri_question", "ground") not in RI_QUESTIONS:
    raise ValueError(f"config.reward.ri_question={config.ri_question!r} must be one of {RI_QUESTIONS}.")
  weights = _need(config, "weights")
  if config.combine == "weighted_sum":
    bad = {k: w for k, w in weights.items()
           if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0}
    if bad or not sum(weights.values()) > 0:
      raise ValueError(f"config.reward.weights={dict(weights)} must be non-negative numbers with a "
                       "positive sum for combine='weighted_sum'.")
  tokens = _need(config, "max_answer_tokens")
  for name in COMPONENTS:
    if name not in tokens:
      raise ValueError(f"config.reward.max_answer_tokens needs an entry for {name!r}.")
    _positive_int(tokens[name], f"max_answer_tokens.{name}")
  _positive_int(_need(config, "judge_size_multiple"), "judge_size_multiple")
  canvas = _need(config, "canvas")
  for field in ("width", "height", "line_width", "font_scale", "font_size"):
    _positive_int(canvas[field], f"canvas.{field}")
  if isinstance(canvas.text_margin, bool) or not isinstance(canvas.text_margin, int) or canvas.text_margin < 0:
    raise ValueError(f"config.reward.canvas.text_margin={canvas.text_margin!r} must be an int >= 0.")
  _rgb(canvas.background, "canvas.background")
  if not canvas.palette:
    raise ValueError("config.reward.canvas.palette must hold at least one (r, g, b) colour.")
  for i, colour in enumerate(canvas.palette):
    _rgb(colour, f"canvas.palette[{i}]")
  if canvas.get("box_colours", "palette") not in BOX_COLOURS:
    raise ValueError(f"config.reward.canvas.box_colours={canvas.box_colours!r}; choose one of {BOX_COLOURS}.")
  if canvas.get("style", "outline") not in CANVAS_STYLES:
    raise ValueError(f"config.reward.canvas.style={canvas.style!r}; choose one of {CANVAS_STYLES}.")
  monitor = _need(config, "monitor")
  if isinstance(monitor.window, bool) or not isinstance(monitor.window, int) or monitor.window < 2:
    raise ValueError(f"config.reward.monitor.window={monitor.window!r} must be an int >= 2.")
  for field in ("rise", "fall", "gap", "sigmas"):
    if not isinstance(monitor.get(field, 0.0), (int, float)) or monitor.get(field, 0.0) < 0:
      raise ValueError(f"config.reward.monitor.{field}={monitor[field]!r} must be a number >= 0.")
