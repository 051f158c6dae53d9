"""Oracle evaluation of a Janus policy on ShapesWorld: a T2I-CompBench-style table per category.

Owns choosing the evaluation prompts (the first N of each category's split file: fixed, so runs
compare), sampling K (chain, image) pairs per prompt with a `JanusGenerator` in fixed-size chunks
(one compile), scoring each with the exact oracle, and the before/after markdown table. The
oracle's maths is data/shapes_world/oracle.py's; sampling is sampling/janus_generate.py's.

Per sample: `t2i_score` (the category's T2I-CompBench-like score of the image: attribute binding
for color/shape/texture, relations for spatial, counts for numeracy, their mean for complex),
the four exact GoT-R1 rewards, and chain validity (at least one well-formed box, none malformed).
`chain_image_iou` is the exact R_RI: how well the image's objects sit in the chain's boxes.
Per sample too, `objects`: how many objects the prompt asks for, how many of them the chain plans
with their attributes, and what the oracle read of each in the image (oracle.object_outcomes);
`object_breakdown` sums them per category, to show where an attribute score is lost.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np

from gotr1_jax.data.chain import parse_chain_stats
from gotr1_jax.data.shapes_world.chains import parse_chain_objects
from gotr1_jax.data.shapes_world.detect import detect_objects
from gotr1_jax.data.shapes_world.oracle import OUTCOMES, check_objects, object_outcomes, oracle_rewards
from gotr1_jax.data.shapes_world.prompts import CATEGORIES, PROMPTS_DIR, PromptSpec, load_prompts
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.eval import paired
from gotr1_jax.sampling.janus_generate import JanusGenerator

COMPONENTS = ("r_sem", "r_spa", "r_ri", "r_pi")


@dataclasses.dataclass
class EvalResult:
  """Scores of one evaluation; `records` holds one dict per sample (prompt, category, scores)."""

  per_category: dict[str, float]  # mean t2i_score per category
  overall: float  # mean over categories
  chain: dict[str, float]  # valid_chain_frac, chain_image_iou and the four exact rewards
  records: list[dict[str, Any]]
  images: np.ndarray  # [num_prompts * K, H, W, 3] uint8, prompt-major

  def summary(self) -> dict[str, Any]:
    """The JSON-able numbers (what the report and a resumed run need)."""
    return dict(per_category=dict(self.per_category), overall=self.overall, chain=dict(self.chain),
                num_samples=len(self.records), samples=paired.sample_table(self.records),
                objects=object_breakdown(self.records))

  def scalars(self, prefix: str = "eval/") -> dict[str, float]:
    out = {f"{prefix}{c}": v for c, v in self.per_category.items()}
    out[f"{prefix}overall"] = self.overall
    out.update({f"{prefix}{k}": v for k, v in self.chain.items()})
    return out


def eval_prompts(split: str = "val", per_category: int = 10, categories: Sequence[str] = CATEGORIES,
                 prompts_dir: str = PROMPTS_DIR, world: WorldConfig = WorldConfig()) -> list[PromptSpec]:
  """The first `per_category` prompts of each category's `<category>_<split>.txt`, category-major."""
  if per_category < 1:
    raise ValueError(f"per_category must be >= 1, got {per_category}.")
  return [spec for c in categories for spec in load_prompts(c, split, prompts_dir, world)[:per_category]]


def _sample_chunks(generator: JanusGenerator, params: Any, vq_params: Any, texts: list[str], num_samples: int,
                   rng: jax.Array, batch_prompts: int):
  """Yields JanusBatch chunks of exactly `batch_prompts` prompts (the last padded by repetition,
  then trimmed) so every chunk has the same shape and compiles once."""
  for i, start in enumerate(range(0, len(texts), batch_prompts)):
    chunk = texts[start:start + batch_prompts]
    real = len(chunk)
    chunk = chunk + [chunk[-1]] * (batch_prompts - real)
    b = generator.generate_batch(params, vq_params, chunk, jax.random.fold_in(rng, i), num_samples)
    yield real * num_samples, b


def evaluate(generator: JanusGenerator, params: Any, vq_params: Any, specs: Sequence[PromptSpec],
             num_samples: int, rng: jax.Array, batch_prompts: int = 8,
             world: WorldConfig = WorldConfig()) -> EvalResult:
  """K = num_samples samples per prompt, each scored by the oracle; see the module docstring."""
  texts = [s.text for s in specs]
  records, images = [], []
  spec_iter = iter([(i, s) for i, s in enumerate(specs) for _ in range(num_samples)])
  for keep, b in _sample_chunks(generator, params, vq_params, texts, num_samples, rng, batch_prompts):
    for chain, image in zip(b.chains[:keep], b.images[:keep]):
      index, spec = next(spec_iter)
      parsed = parse_chain_stats(chain)
      detections = detect_objects(image, world)
      scores = oracle_rewards(spec, chain, image, world, detections=detections)
      asked = sum(g.count for g in spec.groups)
      planned = round(check_objects(spec, parse_chain_objects(chain, world).objects).binding * asked)
      records.append(dict(prompt=spec.text, prompt_index=index, category=spec.category, chain=chain,
                          valid_chain=float(bool(parsed.objects) and parsed.num_malformed == 0), **scores,
                          objects=dict(asked=asked, planned=planned, **object_outcomes(spec, detections))))
      images.append(image)
  by_category = {}
  for c in dict.fromkeys(s.category for s in specs):
    by_category[c] = float(np.mean([r["t2i_score"] for r in records if r["category"] == c]))
  chain = {"valid_chain_frac": float(np.mean([r["valid_chain"] for r in records])),
           "chain_image_iou": float(np.mean([r["r_ri"] for r in records]))}
  chain.update({k: float(np.mean([r[k] for r in records])) for k in COMPONENTS})
  return EvalResult(per_category=by_category, overall=float(np.mean(list(by_category.values()))),
                    chain=chain, records=records, images=np.stack(images))


def format_table(results: Sequence[tuple[str, Mapping[str, Any]]],
                 intervals: Optional[Mapping[str, tuple[float, float]]] = None, level: float = 0.95) -> str:
  """A markdown table of EvalResult.summary() dicts: one column per (name, summary), rows =
  categories, overall, chain numbers; with two results a column shows the change, and with
  `intervals` (eval/paired.py's change_intervals) one more shows each change's interval."""
  first = results[0][1]
  rows = list(first["per_category"]) + ["overall"] + list(first["chain"])
  value = lambda r, k: r["overall"] if k == "overall" else r["per_category"].get(k, r["chain"].get(k, float("nan")))
  two = len(results) == 2
  with_intervals = two and intervals is not None
  header = (["oracle score"] + [n for n, _ in results] + (["change"] if two else [])
            + ([f"{level:.0%} interval of the change"] if with_intervals else []))
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for k in rows:
    vals = [value(r, k) for _, r in results]
    cells = [f"{v:.3f}" for v in vals] + ([f"{vals[1] - vals[0]:+.3f}"] if two else [])
    cells += [paired.format_interval(intervals.get(k))] if with_intervals else []
    lines.append("| " + " | ".join([f"**{k}**" if k == "overall" else k] + cells) + " |")
  return "\n".join(lines)


OBJECTS_CAPTION = ("What became of the objects the prompts ask for (fractions of them; the oracle's reading of "
                   "the images, oracle.object_outcomes)")
OBJECT_COLUMNS = {"planned": "planned in the chain", "read": "read with every attribute",
                  "shape_misread": "its colour and texture, another shape",
                  "attribute_misread": "its shape, another colour or texture", "missing": "not found"}


def object_breakdown(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
  """Per category: `asked` (the objects its prompts ask for, over all samples) and, as fractions of
  them, how many the chains planned and each oracle.OUTCOMES of the images (they sum to 1)."""
  out = {}
  for c in dict.fromkeys(r["category"] for r in records):
    rows = [r["objects"] for r in records if r["category"] == c]
    asked = sum(o["asked"] for o in rows)
    out[c] = {"asked": asked, **{k: sum(o[k] for o in rows) / max(asked, 1) for k in ("planned",) + OUTCOMES}}
  return out


def format_object_table(breakdown: Mapping[str, Mapping[str, float]],
                        ceiling: Optional[Mapping[str, float]] = None,
                        before: Optional[Mapping[str, Mapping[str, float]]] = None) -> str:
  """A markdown table of `object_breakdown`; with `ceiling` (per category: the oracle's score of the
  VQ's round trip of true scenes, pretrain/vq_train.roundtrip_scores) a last column beside it; with
  `before` (an earlier breakdown on the same prompts) each fraction as "before → this"."""
  header = ["category", "objects asked"] + list(OBJECT_COLUMNS.values())
  header += ["VQ round trip of true scenes (score)"] if ceiling is not None else []
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for c, row in breakdown.items():
    earlier = (before or {}).get(c)
    cell = lambda k: f"{earlier[k]:.3f} → {row[k]:.3f}" if earlier else f"{row[k]:.3f}"  # noqa: E731
    cells = [c, str(int(row["asked"]))] + [cell(k) for k in OBJECT_COLUMNS]
    cells += [f"{ceiling[c]:.3f}" if c in ceiling else "-"] if ceiling is not None else []
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
