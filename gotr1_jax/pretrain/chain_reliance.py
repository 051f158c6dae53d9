"""How much a policy draws from its chain: teacher-forced image NLL of val scenes under edited text.

Owns the measurement behind "does the policy read its chain?". Each scene's image codes are scored
(clean inputs, no CFG rows, by a caller's `image_nll`) after the true prompt + chain, and after
three edits of that text: every shape word permuted (one derangement per batch, applied to the
prompt and the chain alike, so the text stays a consistent scene description that no longer
matches the image), every colour word permuted the same way, and the prompts and chains rolled
across the batch (every object's box moves too). A policy that ignores its shapes scores the same
with them permuted; the gaps are in nats per image code. The scorer lives in sft_policy.py.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Sequence

import numpy as np

from gotr1_jax.data.shapes_world.world import WorldConfig, article, plural

EDITS = ("true", "shapes_permuted", "colors_permuted", "chains_rolled")


@dataclasses.dataclass(frozen=True)
class TextBatch:
  """What the SFT example maker reads: prompts, chains and the images they should describe."""

  prompts: list[str]
  chains: list[str]
  images: np.ndarray


def derangement(words: Sequence[str], rng: np.random.Generator) -> dict[str, str]:
  """A random map of `words` onto themselves that moves every word."""
  words = list(words)
  if len(words) < 2:
    raise ValueError(f"Permuting needs two words or more; got {words}.")
  while True:
    perm = [words[i] for i in rng.permutation(len(words))]
    if all(a != b for a, b in zip(words, perm)):
      return dict(zip(words, perm))


def permute_words(text: str, mapping: dict[str, str], plurals: bool = False) -> str:
  """`text` with each word of `mapping` (and, with `plurals`, its plural) replaced by its image; an
  article right before a replaced word is re-chosen ("an orange" -> "a red")."""
  forms = {w: m for w, m in mapping.items()}
  if plurals:
    forms.update({plural(w): plural(m) for w, m in mapping.items()})
  pattern = re.compile(r"\b(?:(a|an) )?(" + "|".join(sorted(map(re.escape, forms), key=len, reverse=True)) + r")\b")

  def swap(m: re.Match) -> str:
    new = forms[m.group(2)]
    return f"{article(new)} {new}" if m.group(1) else new

  return pattern.sub(swap, text)


def edited(batch: TextBatch, edit: str, rng: np.random.Generator, world: WorldConfig = WorldConfig()) -> TextBatch:
  """`batch` with its text edited by `edit` (one of EDITS); the images are untouched."""
  if edit == "true":
    return batch
  if edit == "chains_rolled":
    return TextBatch(batch.prompts[1:] + batch.prompts[:1], batch.chains[1:] + batch.chains[:1], batch.images)
  if edit == "shapes_permuted":
    mapping, plurals = derangement(world.shapes, rng), True
  elif edit == "colors_permuted":
    mapping, plurals = derangement(world.color_names, rng), False
  else:
    raise ValueError(f"Unknown edit {edit!r}; choose from {EDITS}.")
  return TextBatch([permute_words(p, mapping, plurals) for p in batch.prompts],
                   [permute_words(c, mapping, plurals) for c in batch.chains], batch.images)


def chain_reliance(image_nll: Callable[[TextBatch], float], batches: Sequence[TextBatch], seed: int = 0,
                   world: WorldConfig = WorldConfig()) -> dict[str, float]:
  """{f"reliance/{edit}": mean image NLL over `batches` with that edit} (nats per image code)."""
  rng = np.random.default_rng(seed)
  out = {e: [] for e in EDITS}
  for b in batches:
    for e in EDITS:
      out[e].append(image_nll(edited(b, e, rng, world)))
  return {f"reliance/{e}": float(np.mean(v)) for e, v in out.items()}
