"""ShapesWorld prompts: their structure, text, parser, seeded generator and fixed splits.

Owns the T2I-CompBench-like categories (color, shape, texture, spatial, numeracy, complex), the
prompt grammar (text <-> `PromptSpec`), the hash-based train/val/test split and the
`<category>_<split>.txt` files. Scenes that satisfy a prompt are sampled in layout.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import zlib
from typing import Mapping, Optional, Sequence

import numpy as np

from gotr1_jax.data.shapes_world.world import (
    ASSETS_DIR, COUNT_WORDS, INVERSE_RELATION, RELATION_SYNONYMS, RELATIONS, SceneObject,
    WorldConfig, article, count_word, plural)

CATEGORIES: tuple[str, ...] = ("color", "shape", "texture", "spatial", "numeracy", "complex")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
  """A noun phrase of a prompt: `count` objects of `shape`; colour / texture None = any."""

  shape: str
  color: Optional[str] = None
  texture: Optional[str] = None
  count: int = 1

  def matches(self, obj: SceneObject) -> bool:
    """Whether `obj` has every attribute this phrase asks for."""
    return (obj.shape == self.shape and (self.color is None or obj.color == self.color)
            and (self.texture is None or obj.texture == self.texture))

  @property
  def text(self) -> str:
    words = [w for w in (self.texture, self.color) if w is not None]
    if self.count == 1:
      words.append(self.shape)
      return f"{article(words[0])} {' '.join(words)}"
    return " ".join([count_word(self.count)] + words + [plural(self.shape)])


@dataclasses.dataclass(frozen=True)
class Relation:
  """`groups[subject] <relation> groups[object]`, relation one of world.RELATIONS."""

  subject: int
  relation: str
  object: int


@dataclasses.dataclass(frozen=True)
class PromptSpec:
  """A prompt's structure. Text order: relation clauses first, then the remaining groups."""

  groups: tuple[ObjectSpec, ...]
  relations: tuple[Relation, ...] = ()
  category: str = "complex"

  @property
  def text(self) -> str:
    return _join_clauses(_clauses(self))

  @property
  def num_objects(self) -> int:
    return sum(g.count for g in self.groups)


def _clauses(spec: PromptSpec) -> list[str]:
  in_relation = {i for r in spec.relations for i in (r.subject, r.object)}
  clauses = [f"{spec.groups[r.subject].text} {r.relation} {spec.groups[r.object].text}"
             for r in spec.relations]
  return clauses + [g.text for i, g in enumerate(spec.groups) if i not in in_relation]


def _join_clauses(clauses: Sequence[str]) -> str:
  if len(clauses) == 1:
    return clauses[0]
  return ", ".join(clauses[:-1]) + " and " + clauses[-1]


def canonical_key(spec: PromptSpec) -> str:
  """A text key equal for prompts that describe the same scene up to clause order and relation
  direction ("A right of B" == "B left of A"); the split is a hash of it."""
  in_relation = {i for r in spec.relations for i in (r.subject, r.object)}
  clauses = []
  for r in spec.relations:
    a, rel, b = spec.groups[r.subject].text, r.relation, spec.groups[r.object].text
    if rel in ("to the right of", "below"):
      a, rel, b = b, INVERSE_RELATION[rel], a
    clauses.append(f"{a} {rel} {b}")
  clauses += [g.text for i, g in enumerate(spec.groups) if i not in in_relation]
  return " | ".join(sorted(clauses))


# ---------------------------------------------------------------------------------------------
# Parsing.

_ALL_RELATIONS = sorted(set(RELATIONS) | set(RELATION_SYNONYMS), key=len, reverse=True)
_RELATION_RE = re.compile(r"\s(" + "|".join(re.escape(r) for r in _ALL_RELATIONS) + r")\s")
_CLAUSE_SPLIT_RE = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
_COUNTS = {w: i for i, w in enumerate(COUNT_WORDS)} | {"a": 1, "an": 1}


def parse_phrase(text: str, world: WorldConfig = WorldConfig(), with_count: bool = True,
                 ) -> Optional[ObjectSpec]:
  """Reads "[count] [texture] [colour] shape(s)"; None when it is not such a phrase.

  With `with_count=False` (chain object names) there is no count word and the count is 1.
  """
  words = text.strip().lower().split()
  count = 1
  if with_count:
    if not words or not (words[0] in _COUNTS or words[0].isdigit()):
      return None
    count = int(words[0]) if words[0].isdigit() else _COUNTS[words[0]]
    words = words[1:]
  if not words:
    return None
  texture = words.pop(0) if len(words) > 1 and words[0] in world.textures else None
  color = words.pop(0) if len(words) > 1 and words[0] in world.color_names else None
  if len(words) != 1:
    return None
  shape = next((s for s in world.shapes if words[0] in (s, plural(s))), None)
  if shape is None or count < 1:
    return None
  return ObjectSpec(shape=shape, color=color, texture=texture, count=count)


def parse_prompt(text: str, category: str = "complex", world: WorldConfig = WorldConfig(),
                 ) -> PromptSpec:
  """Reads a ShapesWorld prompt back into its `PromptSpec` (inverse of `PromptSpec.text`).

  Raises ValueError naming the clause it cannot read.
  """
  if category not in CATEGORIES:
    raise ValueError(f"Unknown category {category!r}; use one of {CATEGORIES}.")
  body = text.strip().lower().rstrip(".").strip()
  groups: list[ObjectSpec] = []
  relations: list[Relation] = []
  for clause in _CLAUSE_SPLIT_RE.split(body):
    m = _RELATION_RE.search(f" {clause} ")
    parts = [clause] if m is None else [clause[:m.start(1) - 1], clause[m.end(1) - 1:]]
    phrases = [parse_phrase(p, world) for p in parts]
    if any(p is None for p in phrases):
      raise ValueError(f"Cannot read {clause!r} in prompt {text!r}: a ShapesWorld clause is "
                       "'<count> [texture] [colour] <shape>' or two such phrases joined by a "
                       f"relation ({', '.join(RELATIONS)}).")
    if m is not None:
      relation = RELATION_SYNONYMS.get(m.group(1), m.group(1))
      relations.append(Relation(len(groups), relation, len(groups) + 1))
    groups.extend(phrases)  # type: ignore[arg-type]
  return PromptSpec(groups=tuple(groups), relations=tuple(relations), category=category)


# ---------------------------------------------------------------------------------------------
# Generation.


@dataclasses.dataclass(frozen=True)
class PromptConfig:
  """The generator's odds; every phrase always names a colour and a shape."""

  three_objects_p: float = 0.3      # color / shape / texture prompts with 3 objects instead of 2
  two_groups_p: float = 0.5         # numeracy prompts with two counted groups instead of one
  numeracy_texture_p: float = 0.2   # a numeracy phrase also names a texture
  complex_texture_p: float = 0.5    # a complex phrase also names a texture


def _distinct_phrases(rng: np.random.Generator, n: int, world: WorldConfig, *, distinct: str,
                      texture_p: float) -> list[ObjectSpec]:
  """n single phrases with pairwise distinct `distinct` attribute and distinct (colour, shape)."""
  pools = {"color": world.color_names, "shape": world.shapes, "texture": world.textures}
  values = rng.choice(len(pools[distinct]), size=n, replace=False)
  out: list[ObjectSpec] = []
  while len(out) < n:
    attrs = {k: pools[k][int(rng.integers(len(v)))] for k, v in pools.items()}
    attrs[distinct] = pools[distinct][int(values[len(out)])]
    if distinct != "texture" and rng.random() >= texture_p:
      attrs["texture"] = None
    if any(o.color == attrs["color"] and o.shape == attrs["shape"] for o in out):
      continue
    out.append(ObjectSpec(**attrs))
  return out


def sample_prompt(category: str, rng: np.random.Generator, world: WorldConfig = WorldConfig(),
                  config: PromptConfig = PromptConfig()) -> PromptSpec:
  """One random prompt of `category`, every phrase naming its colour and shape."""
  many = 3 if rng.random() < config.three_objects_p else 2
  if category == "color":
    groups = _distinct_phrases(rng, many, world, distinct="color", texture_p=0.0)
    return PromptSpec(tuple(groups), category=category)
  if category == "shape":
    groups = _distinct_phrases(rng, many, world, distinct="shape", texture_p=0.0)
    return PromptSpec(tuple(groups), category=category)
  if category == "texture":
    groups = _distinct_phrases(rng, min(many, len(world.textures)), world, distinct="texture",
                               texture_p=1.0)
    return PromptSpec(tuple(groups), category=category)
  relation = RELATIONS[int(rng.integers(len(RELATIONS)))]
  if category == "spatial":
    groups = _distinct_phrases(rng, 2, world, distinct="color", texture_p=0.0)
    return PromptSpec(tuple(groups), (Relation(0, relation, 1),), category)
  if category == "numeracy":
    return _sample_numeracy(rng, world, config)
  if category == "complex":
    groups = _distinct_phrases(rng, 3, world, distinct="color", texture_p=config.complex_texture_p)
    extra = int(rng.integers(1, max(2, world.max_objects - 2) + 1))
    groups[2] = dataclasses.replace(groups[2], count=extra)
    return PromptSpec(tuple(groups), (Relation(0, relation, 1),), category)
  raise ValueError(f"Unknown category {category!r}; use one of {CATEGORIES}.")


def _sample_numeracy(rng: np.random.Generator, world: WorldConfig, config: PromptConfig,
                     ) -> PromptSpec:
  if world.max_objects < 3 or rng.random() >= config.two_groups_p:
    counts = [int(rng.integers(2, world.max_objects + 1))]
  else:
    while True:
      counts = [int(c) for c in rng.integers(1, world.max_objects, size=2)]
      if max(counts) >= 2 and sum(counts) <= world.max_objects:
        break
  groups = _distinct_phrases(rng, len(counts), world, distinct="color",
                             texture_p=config.numeracy_texture_p)
  groups = [dataclasses.replace(g, count=c) for g, c in zip(groups, counts)]
  return PromptSpec(tuple(groups), category="numeracy")


# ---------------------------------------------------------------------------------------------
# Splits and files.

DEFAULT_SPLIT_SIZES: Mapping[str, int] = {"train": 700, "val": 300, "test": 300}
# A prompt's split depends only on its canonical text, never on the requested sizes or seed.
SPLIT_FRACTIONS: Mapping[str, float] = {"train": 0.6, "val": 0.2, "test": 0.2}


def split_of(spec: PromptSpec, fractions: Mapping[str, float] = SPLIT_FRACTIONS) -> str:
  """The split a prompt belongs to: a hash of its canonical key, bucketed by `fractions`."""
  digest = hashlib.sha256(canonical_key(spec).encode()).digest()
  u = int.from_bytes(digest[:8], "big") / 2**64
  total, acc = sum(fractions.values()), 0.0
  for name, frac in fractions.items():
    acc += frac / total
    if u < acc:
      return name
  return list(fractions)[-1]


def make_prompt_splits(seed: int = 0, sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
                       categories: Sequence[str] = CATEGORIES,
                       world: WorldConfig = WorldConfig(),
                       config: PromptConfig = PromptConfig(),
                       ) -> dict[str, dict[str, list[PromptSpec]]]:
  """`{category: {split: [PromptSpec]}}`: distinct prompts, disjoint splits, deterministic.

  Each category draws from its own stream (seeded by seed and the category name), so a smaller
  `sizes` gives a prefix of each list of a larger one.
  """
  unknown = set(sizes) - set(SPLIT_FRACTIONS)
  if unknown:
    raise ValueError(f"Unknown splits {sorted(unknown)}; splits are {SPLITS}.")
  out: dict[str, dict[str, list[PromptSpec]]] = {}
  for category in categories:
    rng = np.random.default_rng([seed, zlib.crc32(category.encode())])
    lists: dict[str, list[PromptSpec]] = {s: [] for s in sizes}
    seen: set[str] = set()
    budget = 50 * sum(sizes.values()) + 1000
    while any(len(lists[s]) < n for s, n in sizes.items()):
      budget -= 1
      if budget < 0:
        raise ValueError(f"Only {sum(map(len, lists.values()))} distinct {category} prompts "
                         f"were found for sizes {dict(sizes)}; ask for fewer prompts.")
      spec = sample_prompt(category, rng, world, config)
      key = canonical_key(spec)
      if key in seen:
        continue
      seen.add(key)
      split = split_of(spec)
      if split in lists and len(lists[split]) < sizes[split]:
        lists[split].append(spec)
    out[category] = lists
  return out


PROMPTS_DIR = os.path.join(ASSETS_DIR, "prompts")  # the shipped split files


def prompt_file_name(category: str, split: str) -> str:
  return f"{category}_{split}.txt"


def load_prompts(category: str, split: str, prompts_dir: str = PROMPTS_DIR,
                 world: WorldConfig = WorldConfig()) -> list[PromptSpec]:
  """The prompts of one shipped (or written) `<category>_<split>.txt` file."""
  return read_prompt_file(os.path.join(prompts_dir, prompt_file_name(category, split)),
                          category, world)


def write_prompt_files(splits: Mapping[str, Mapping[str, Sequence[PromptSpec]]], out_dir: str,
                       ) -> list[str]:
  """Writes T2I-CompBench-style `<category>_<split>.txt` files (one prompt a line)."""
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for category, by_split in splits.items():
    for split, specs in by_split.items():
      path = os.path.join(out_dir, prompt_file_name(category, split))
      with open(path, "w", encoding="utf-8") as f:
        f.write("".join(s.text + "\n" for s in specs))
      paths.append(path)
  return paths


def read_prompt_file(path: str, category: Optional[str] = None,
                     world: WorldConfig = WorldConfig()) -> list[PromptSpec]:
  """Reads a `<category>_<split>.txt` file; the category defaults to the file name's prefix."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"No prompt file {path}; write one with "
                            "`python -m gotr1_jax.data.shapes_world.make_assets`.")
  if category is None:
    category = os.path.basename(path).rsplit("_", 1)[0]
  with open(path, encoding="utf-8") as f:
    return [parse_prompt(line, category, world) for line in f if line.strip()]
