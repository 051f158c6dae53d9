"""The judge's instructions for R_sem, R_spa, R_RI and R_PI, versioned in one place.

Owns the wording only (GOT_R1_FACTS.md §4): each prompt asks for JSON only. It does not apply a
chat template or insert image tokens (the generator does), and does not parse answers (parse.py).
Change wording by adding a new version; a version once used in a run is never edited.
"""
from __future__ import annotations

import dataclasses
import re

from gotr1_jax.data.chain import BOX_END, BOX_START, COORD_MAX, OBJ_END, OBJ_START


@dataclasses.dataclass(frozen=True)
class JudgePrompts:
  """One version of the four templates (str.format fields in braces; literal braces doubled).

  r_sem: text only, fields {prompt} {chain}; scale 0-10.
  r_spa: with the layout canvas, field {prompt}; scale 1-10 in three bands.
  r_ri:  with the generated image, field {object}; answer a JSON list of boxes in image pixels.
  r_pi:  with the generated image, field {prompt}; scale 0-10, spatial words read strictly.
  caption: with the generated image, no field; every object named and boxed as r_ri's answers are
    (R_RI read from one such question per image, config.reward.ri_question="caption"; not GoT-R1's).
  """

  version: str
  r_sem: str
  r_spa: str
  r_ri: str
  r_pi: str
  caption: str

  def sem(self, prompt: str, chain: str) -> str:
    return self.r_sem.format(prompt=prompt, chain=readable_chain(chain), coord_max=COORD_MAX)

  def spa(self, prompt: str) -> str:
    return self.r_spa.format(prompt=prompt)

  def ri(self, object_name: str) -> str:
    return self.r_ri.format(object=object_name)

  def pi(self, prompt: str) -> str:
    return self.r_pi.format(prompt=prompt)

  def describe(self) -> str:
    return self.caption.format()


_V1 = JudgePrompts(
    version="v1",
    r_sem=(
        "You are judging a plan written before generating an image.\n"
        "Prompt: {prompt}\n"
        "Plan: {chain}\n"
        "In the plan each object is followed by its bounding box (x1,y1),(x2,y2) on a "
        "{coord_max}x{coord_max} canvas with the origin at the top-left.\n"
        "Rate from 0 to 10 how well the plan's content matches the prompt, judging together:\n"
        "- completeness: every object, attribute, count and relation of the prompt is in the plan;\n"
        "- faithfulness: nothing in the plan contradicts the prompt;\n"
        "- consistency: the plan does not contradict itself;\n"
        "- clarity: each object is named clearly and unambiguously.\n"
        "10 means all four are perfect; 0 means the plan is unrelated to the prompt.\n"
        'Answer with JSON only and no other text: {{"score": <integer from 0 to 10>}}'),
    r_spa=(
        "The picture is the layout plan of an image: each coloured rectangle is where one object "
        "will be drawn, and the object's name is written at its rectangle's top-left corner.\n"
        "Prompt: {prompt}\n"
        "Rate from 1 to 10 how well the layout places the objects as the prompt describes "
        "(positions, relative positions, sizes and counts):\n"
        "8-10: every spatial relation of the prompt is right;\n"
        "5-7: the relations are partly right;\n"
        "1-4: the layout contradicts the prompt or objects of the prompt are missing.\n"
        'Answer with JSON only and no other text: {{"score": <integer from 1 to 10>}}'),
    r_ri=(
        "Locate every {object} in the image and give its bounding box.\n"
        "Answer with JSON only and no other text: a list such as "
        '[{{"bbox_2d": [x1, y1, x2, y2], "label": "{object}"}}] in pixel coordinates of this '
        "image, one entry per {object}. If there is no {object}, answer []."),
    r_pi=(
        "Rate from 0 to 10 how well the image matches this prompt: {prompt}\n"
        "Check every object, attribute (colour, shape, texture), count and spatial relation. "
        "Read spatial words strictly: 'left of', 'right of', 'above' and 'below' mean positions in "
        "the image as the viewer sees it; an image whose relation is wrong or only roughly right "
        "scores at most 5.\n"
        'Answer with JSON only and no other text: {{"score": <integer from 0 to 10>}}'),
    caption=(
        "Locate every object in the image and name it by its colour, shape and texture.\n"
        "Answer with JSON only and no other text: a list such as "
        '[{{"bbox_2d": [x1, y1, x2, y2], "label": "<name>"}}] in pixel coordinates of this '
        "image, one entry per object. If there is no object, answer []."),
)

# The same four questions in as few words as possible, for small judges trained on them (ShapesWorld's
# shipped judge): the instructions of v1 are ~150 tokens that such a judge cannot use but must read
# on every question. Answers and scales are v1's.
_COMPACT_V1 = JudgePrompts(
    version="compact-v1",
    r_sem='Plan check. Prompt: {prompt}\nPlan: {chain}\nScore 0-10 as JSON {{"score": n}}.',
    r_spa='Layout check. Prompt: {prompt}\nScore 1-10 as JSON {{"score": n}}.',
    r_ri='Locate every {object}. Answer a JSON list of {{"bbox_2d": [x1, y1, x2, y2], "label": "{object}"}}.',
    r_pi='Image check. Prompt: {prompt}\nScore 0-10 as JSON {{"score": n}}.',
    caption='Locate every object. Answer a JSON list of {{"bbox_2d": [x1, y1, x2, y2], "label": name}}.',
)

PROMPT_VERSIONS: dict[str, JudgePrompts] = {p.version: p for p in (_V1, _COMPACT_V1)}

# Published scales (GOT_R1_FACTS.md §4) as (minimum, maximum) of the judge's answer; parse.py
# rescales s to (s - minimum) / (maximum - minimum) in [0, 1].
SCORE_SCALES: dict[str, tuple[int, int]] = {"r_sem": (0, 10), "r_spa": (1, 10), "r_pi": (0, 10)}


def get_prompts(version: str) -> JudgePrompts:
  if version not in PROMPT_VERSIONS:
    raise ValueError(f"config.reward.prompt_version={version!r} is unknown; available: "
                     f"{sorted(PROMPT_VERSIONS)}.")
  return PROMPT_VERSIONS[version]


_TOKENS = re.compile("|".join(re.escape(t) for t in (OBJ_START, OBJ_END, BOX_START, BOX_END)))


def readable_chain(chain: str) -> str:
  """The chain with its special tokens removed, e.g. ``yellow vase (202,482),(729,964)``.

  The judge tokenizer would read ``<|box_start|>`` as its own grounding token (whose coordinate
  frame differs between Qwen2-VL and Qwen2.5-VL), so the plan is shown as plain text.
  """
  return re.sub(r"[ \t]+", " ", _TOKENS.sub(" ", chain)).strip()
