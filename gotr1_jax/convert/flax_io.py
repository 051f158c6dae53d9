"""Our own checkpoint directory format, shared by every family, and the parity measure of `--verify`.

Owns the Flax directory that `tools/convert.py --to flax` writes: safetensors keyed by '/'-joined
Flax paths, one top-level group per parameter tree (e.g. `params/...` and `vq_params/...`), and a
config.json `{format, family, model}` where `model` is the family's config as a plain dict. Also the
tokenizer/processor files carried across a conversion and `max_rel_error`, the number `--verify`
prints. The per-family tables live in convert/<family>.py; safetensors I/O in convert/table.py.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from gotr1_jax.convert.table import DEFAULT_MAX_SHARD_BYTES, flatten, load_safetensors, save_safetensors, unflatten

FLAX_FORMAT = "gotr1_jax.flax"  # config.json's `format` in a directory written by save_flax_dir
VERIFY_TOLERANCE = 1e-4  # `--verify` fails above this max |ours - torch| / max |torch| (fp32)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "chat_template.json", "chat_template.jinja",
                   "processor_config.json", "preprocessor_config.json", "generation_config.json")


def copy_tokenizer_files(src: str | os.PathLike, dst: str | os.PathLike) -> list[Path]:
  """Copies whatever tokenizer / processor files `src` has (none is fine) into `dst`."""
  Path(dst).mkdir(parents=True, exist_ok=True)
  return [Path(shutil.copy2(Path(src) / name, Path(dst) / name))
          for name in TOKENIZER_FILES if (Path(src) / name).exists()]


def _unwrap(tree: Mapping[str, Any]) -> Mapping[str, Any]:
  return tree["params"] if set(tree) == {"params"} else tree


def save_flax_dir(path: str | os.PathLike, family: str, model: Mapping[str, Any],
                  trees: Mapping[str, Mapping[str, Any]],
                  max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
  """Writes parameter `trees` ({group: tree}, a {'params': ...} wrapper is removed) and config.json.
  `model` must be JSON-serialisable (e.g. dataclasses.asdict of the family's config)."""
  flat = {f"{group}/{key}": value for group, tree in trees.items() for key, value in flatten(_unwrap(tree)).items()}
  files = save_safetensors(flat, path, max_shard_bytes)
  meta = dict(format=FLAX_FORMAT, family=family, groups=sorted(trees), model=dict(model))
  (Path(path) / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
  return files + [Path(path) / "config.json"]


def read_flax_meta(path: str | os.PathLike) -> Optional[dict]:
  """config.json of a Flax directory, or None when `path` is not one (e.g. a torch checkpoint)."""
  f = Path(path) / "config.json"
  if not f.is_file():
    return None
  meta = json.loads(f.read_text())
  return meta if isinstance(meta, dict) and meta.get("format") == FLAX_FORMAT else None


def is_flax_dir(path: str | os.PathLike, family: Optional[str] = None) -> bool:
  meta = read_flax_meta(path)
  return meta is not None and (family is None or meta.get("family") == family)


def load_flax_dir(path: str | os.PathLike, family: str,
                  groups: Sequence[str]) -> tuple[dict, dict[str, dict]]:
  """(model config dict, {group: {'params': tree}}) of a directory written by save_flax_dir.
  Raises naming the fix when the directory is not ours, holds another family or lacks a group."""
  meta = read_flax_meta(path)
  if meta is None:
    raise ValueError(f"{path} is not a gotr1_jax Flax directory (no config.json with format={FLAX_FORMAT!r}); "
                     f"make one with `python tools/convert.py --family {family} --to flax --src DIR --dst {path}`.")
  if meta.get("family") != family:
    raise ValueError(f"{path} holds a {meta.get('family')!r} checkpoint, not {family!r}; pass "
                     f"--family {meta.get('family')} or the right directory.")
  flat = load_safetensors(path)
  out = {}
  for group in groups:
    prefix = group + "/"
    part = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
    if not part:
      raise ValueError(f"{path} has no '{group}/' tensors; it was written by another version or is "
                       "incomplete: convert the source checkpoint again.")
    out[group] = {"params": unflatten(part)}
  stray = sorted(k for k in flat if k.split("/", 1)[0] not in groups)
  if stray:
    raise ValueError(f"{path} has tensors outside {list(groups)}: {stray[:8]}")
  return meta["model"], out


def max_rel_error(ours: Any, ref: Any) -> float:
  """max |ours - ref| / max |ref|, in float64."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  if ours.shape != ref.shape:
    raise ValueError(f"shapes differ: ours {ours.shape}, reference {ref.shape}.")
  return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
