"""Batched greedy generation with Qwen2.5-VL: (text, images) requests -> answer strings. The judge's Generator.

Owns the host side of a call (the chat template through the checkpoint's tokenizer, image patches
at the processor's own min/max pixels and nothing else, placeholder expansion, M-RoPE position ids,
rows / prompt lengths / patches padded to buckets), the `DecodeFns` that put `QwenVL` behind the
compiled sampler (sampling/autoregressive.py; the vision tower runs inside its prefill through
`embed_extra`), decoding answers up to `<|im_end|>` or EOS, the rewards `Generator` protocol
(`__call__(requests)`), next-token probabilities after a given answer start (`next_token_probs`,
one forward pass: rewards/score_readout.py), and building all of it from a checkpoint directory. It owns no model
(models/qwen_vl.py), sampling loop, or judge prompt (rewards/).

Compiles: one trace per (row bucket, prompt bucket, patch bucket or none, max_new_tokens). A call
sorts its rows by prompt length and runs them in chunks of at most max(row_buckets) rows; a short
chunk is filled with copies of its first row, which stop when it stops.

A request longer than the largest prompt bucket is a user error in `generate` (it raises, naming
the fix) but not in the rewards' entry points: there the text comes from the policy, whose chains
a GRPO run can make arbitrarily strange, so `__call__` answers None (unreadable: the reward scores
it 0 and counts it) and `next_token_probs` gives it zero probability (no digit mass: also 0 and
counted). They are counted in `num_overlong` and logged once with the fix.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gotr1_jax.convert.qwen_vl import load_qwen_vl
from gotr1_jax.data.qwen_chat import (ENDOFTEXT, IM_END, IMAGE_PAD, VISION_END, VISION_START, expand_image_pads,
                                      render_chat)
from gotr1_jax.models import llm
from gotr1_jax.models.janus import _build as build_dataclass  # one dict -> dataclass rule for all configs
from gotr1_jax.models.qwen_image_processing import (QwenImageConfig, image_processor, image_token_counts,
                                                    pack_vision_batch, patchify_images)
from gotr1_jax.models.qwen_positions import get_rope_index
from gotr1_jax.models.qwen_vl import QwenVL
from gotr1_jax.rewards.judge import JudgeRequest
from gotr1_jax.sampling.autoregressive import DecodeFns, Sampler, SamplingConfig
from gotr1_jax.sampling.buckets import bucket_length, pad_to_bucket
from gotr1_jax.sampling.janus_generate import load_tokenizer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class QwenVLGenerationConfig:
  """How requests are batched and decoded (greedy, as the judge needs)."""

  prompt_buckets: tuple[int, ...] = (128, 256, 512, 1024, 2048)  # chat prompt + expanded image pads
  row_buckets: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # rows per compiled call; more run in chunks
  patch_buckets: tuple[int, ...] = (1024, 4096, 16384)  # vision patches per row (all its images)
  min_pixels: int = 0  # 0 = the checkpoint's preprocessor_config.json (else QwenImageConfig's)
  max_pixels: int = 0
  stop_tokens: tuple[str, ...] = (IM_END, ENDOFTEXT)  # those the tokenizer has; at least one
  dtype: str = ""  # compute dtype of LM and tower ("" = the checkpoint config's)
  param_dtype: str = ""  # cast the stored weights on load ("" = keep)
  # The user turn's images before its text (Qwen's usual order), or after it, so that the answer
  # starts at the same distance from the image whatever the question's length. Use what the judge
  # was trained with (config.judge.images_first of configs/shapes_pretrain.py).
  images_first: bool = True
  # The answer's KV cache grows this many slots at a time (SamplingConfig.cache_block); 0 = the
  # whole bucket + answer bound from the first token, one loop to compile (the judge in
  # configs/shapes_demo.py: 32).
  cache_block: int = 0

  def __post_init__(self):
    for name in ("prompt_buckets", "row_buckets", "patch_buckets"):
      object.__setattr__(self, name, tuple(sorted(int(b) for b in getattr(self, name))))
    stops = self.stop_tokens
    object.__setattr__(self, "stop_tokens", (stops,) if isinstance(stops, str) else tuple(stops))
    if not self.prompt_buckets or not self.row_buckets or not self.patch_buckets or self.row_buckets[0] < 1:
      raise ValueError("prompt_buckets, row_buckets and patch_buckets must be non-empty (row buckets >= 1).")
    if self.min_pixels < 0 or self.max_pixels < 0 or (self.max_pixels and self.min_pixels > self.max_pixels):
      raise ValueError(f"min_pixels={self.min_pixels} / max_pixels={self.max_pixels}: use 0 (the checkpoint's) "
                       "or 0 < min_pixels <= max_pixels.")

  @classmethod
  def from_dict(cls, d: Optional[Mapping[str, Any]]) -> QwenVLGenerationConfig:
    """From a config dict / ConfigDict (None = defaults), naming unknown fields."""
    fields = d.to_dict() if hasattr(d, "to_dict") else (d or {})
    return build_dataclass(cls, fields, "the Qwen2.5-VL generation config")


def qwen_vl_decode_fns(model: QwenVL) -> DecodeFns:
  """DecodeFns of `model`; the sampler's `embed_extra` is the rows' VisionBatch, or None for text only."""

  def method(fn):
    return lambda params, *args: model.apply(params, *args, method=fn)

  return DecodeFns(
      embed=method(QwenVL.embed_inputs), step_embed=method(QwenVL.embed_inputs),
      trunk=method(QwenVL.trunk), head=method(QwenVL.logits),
      init_cache=functools.partial(llm.init_cache, model.config.lm))


class PromptRow(NamedTuple):
  """One request on the host: its prompt ids and its images' patches and grids."""

  ids: list[int]  # chat prompt, <|image_pad|> expanded to the images' merged-token counts
  patches: np.ndarray  # [n, patch_dim] (n = 0 without images)
  grid_thw: np.ndarray  # [images, 3]


def _image_list(images: Any) -> list[np.ndarray]:
  """None, one [H, W, 3] uint8 image, or a sequence of them -> list of images (checked)."""
  if images is None:
    return []
  if isinstance(images, np.ndarray) and images.ndim == 3:
    images = [images]
  out = [np.asarray(im) for im in images]
  for im in out:
    if im.dtype != np.uint8 or im.ndim != 3 or im.shape[-1] != 3:
      raise ValueError(f"images must be uint8 [H, W, 3] RGB arrays, got {im.dtype} {im.shape}; convert with "
                       "np.clip(x, 0, 255).astype(np.uint8).")
  return out



def single_token_ids(tokenizer: Any, candidates: Sequence[str]) -> list[int]:
  """The token id of each candidate string; each must be exactly one token of `tokenizer` (the
  scores read from next-token probabilities: next_token_probs, pretrain/judge_rank.py)."""
  ids = []
  for c in candidates:
    tok = tokenizer(c, add_special_tokens=False)["input_ids"]
    if len(tok) != 1:
      raise ValueError(f"candidate {c!r} is {len(tok)} tokens for this tokenizer; next-token scores read "
                       "single tokens only.")
    ids.append(tok[0])
  return ids

class QwenVLGenerator:
  """Greedy batched generation over one QwenVL, its params, tokenizer and image preprocessing,
  and next-token probabilities after a given answer start (`next_token_probs`, no sampling).

  `generate(texts, images, max_new_tokens)` answers user turns (each with its images before the
  text); calling the generator with `JudgeRequest`s is the rewards `Generator` protocol. Images are
  resized only by the Qwen processor's own rule (sides rounded to multiples of patch * merge, area
  kept within [min_pixels, max_pixels]).
  """

  def __init__(self, model: QwenVL, params: Any, tokenizer: Any,
               config: QwenVLGenerationConfig = QwenVLGenerationConfig(),
               image_config: Optional[QwenImageConfig] = None):
    cfg = model.config
    self.model, self.tokenizer, self.config = model, tokenizer, config
    self.params = jax.tree.map(jnp.asarray, params)  # on the device once, not per call
    image_config = image_config or QwenImageConfig()
    pixels = {k: getattr(config, k) for k in ("min_pixels", "max_pixels") if getattr(config, k)}
    self.image_config = dataclasses.replace(image_config, patch_buckets=config.patch_buckets, **pixels)
    self.processor = image_processor(self.image_config, cfg.vision)
    vocab = tokenizer.get_vocab()
    for token, want in ((IMAGE_PAD, cfg.image_token_id), (VISION_START, cfg.vision_start_token_id),
                        (VISION_END, cfg.vision_end_token_id)):
      if vocab.get(token) != want:
        raise ValueError(f"the tokenizer's {token} is id {vocab.get(token)} but the model expects {want}: use the "
                         "tokenizer that ships with the checkpoint.")
    if len(tokenizer) > cfg.lm.vocab_size:
      raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the LM embeds {cfg.lm.vocab_size}; use the "
                       "checkpoint's own tokenizer.")
    self.stop_ids = tuple(vocab[t] for t in config.stop_tokens if t in vocab)
    if not self.stop_ids:
      raise ValueError(f"the tokenizer has none of the stop tokens {config.stop_tokens}; set "
                       "generation.stop_tokens.")
    pad = tokenizer.pad_token_id
    self.pad_id = int(pad if pad is not None else self.stop_ids[-1])
    self.fns = qwen_vl_decode_fns(model)
    self.samplers: dict[int, Sampler] = {}  # one per max_new_tokens
    self._probs_fn = jax.jit(self._next_token_probs)  # next_token_probs' forward pass
    self.num_overlong = 0  # reward requests skipped as longer than the largest prompt bucket

  @property
  def num_traces(self) -> int:
    """Compiles so far, over every max_new_tokens (tests read it)."""
    return sum(s.num_traces for s in self.samplers.values())

  def sampler(self, max_new_tokens: int) -> Sampler:
    if max_new_tokens not in self.samplers:
      self.samplers[max_new_tokens] = Sampler(self.fns, SamplingConfig(
          max_new_tokens=max_new_tokens, greedy=True, stop_tokens=self.stop_ids, pad_id=self.pad_id,
          cache_block=self.config.cache_block))
    return self.samplers[max_new_tokens]

  # ---- host side ----------------------------------------------------------------------------
  def prompt_row(self, text: str, images: Any = None, answer_prefix: str = "") -> PromptRow:
    """One user turn: its images patchified and its chat prompt tokenized with one <|image_pad|>
    per merged vision token (what transformers' Qwen2_5_VLProcessor produces), followed by
    `answer_prefix`, the start of the assistant's answer given rather than generated."""
    images = _image_list(images)
    vision = self.model.config.vision
    if images:
      patches, grid_thw = patchify_images(images, self.processor)
    else:
      patches, grid_thw = np.zeros((0, vision.patch_dim), np.float32), np.zeros((0, 3), np.int64)
    prompt = render_chat(self.tokenizer, text, len(images), self.config.images_first)
    prompt = expand_image_pads(prompt, image_token_counts(grid_thw, vision)) + answer_prefix
    return PromptRow(list(self.tokenizer(prompt)["input_ids"]), patches, grid_thw)

  def batch_inputs(self, rows: Sequence[PromptRow]) -> dict[str, Any]:
    """Sampler inputs of at most max(row_buckets) rows: left-padded tokens and mask [R, P] (R the
    row bucket, filled with copies of rows[0]), M-RoPE positions [3, R, P] and the VisionBatch
    (None when no row has an image)."""
    rows = list(rows) + [rows[0]] * (bucket_length(len(rows), self.config.row_buckets) - len(rows))
    tokens, mask = pad_to_bucket([r.ids for r in rows], self.config.prompt_buckets, self.pad_id)
    grids = np.concatenate([r.grid_thw for r in rows])
    positions, _ = get_rope_index(tokens, self.model.config.mrope, image_grid_thw=grids if len(grids) else None,
                                  attention_mask=mask)
    vision = None
    if len(grids):
      vision = pack_vision_batch([(r.patches, r.grid_thw) for r in rows], self.model.config.vision,
                                 self.config.patch_buckets)
    return dict(tokens=tokens, mask=mask, positions=positions, vision=vision)

  def decode(self, ids: Sequence[int]) -> str:
    """Answer text up to the first stop token. Other special tokens are kept: the reward parser
    reads Qwen2-VL's grounding format `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` (0-1000 frame),
    which skip_special_tokens would reduce to bare pixel-looking pairs."""
    ids = list(ids)
    for i, t in enumerate(ids):
      if t in self.stop_ids:
        ids = ids[:i]
        break
    return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

  # ---- generation ---------------------------------------------------------------------------
  def _row_chunks(self, rows: Sequence[PromptRow], skip_overlong: bool = False):
    """(row indices, batch_inputs) per chunk of at most max(row_buckets) rows, shortest rows first
    (so that a chunk's rows share a prompt bucket where they can). With skip_overlong, rows longer
    than the largest prompt bucket are left out of every chunk and counted (module docstring)."""
    chunk = self.config.row_buckets[-1]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
    if skip_overlong:
      longest = max(self.config.prompt_buckets)
      fitting = [i for i in order if len(rows[i].ids) <= longest]
      skipped = len(order) - len(fitting)
      if skipped:
        if not self.num_overlong:
          log.warning("%d judge requests are longer than the largest prompt bucket (%d tokens; the longest is %d): "
                      "they score 0 and are counted as unreadable. Add a larger bucket to the judge's "
                      "generation.prompt_buckets (config.judge_generation) to score them.", skipped, longest,
                      max(len(r.ids) for r in rows))
        self.num_overlong += skipped
      order = fitting
    for start in range(0, len(order), chunk):
      idx = order[start:start + chunk]
      yield idx, self.batch_inputs([rows[i] for i in idx])

  def generate_ids(self, rows: Sequence[PromptRow], max_new_tokens: int,
                   skip_overlong: bool = False) -> list[Optional[list[int]]]:
    """Greedy continuations (ending with the stop token where one was produced), in row order;
    None for rows skipped as over-long (skip_overlong; otherwise they raise)."""
    out: list[Optional[list[int]]] = [None for _ in rows]
    for idx, inputs in self._row_chunks(rows, skip_overlong):
      sample = jax.device_get(self.sampler(max_new_tokens)(
          self.params, inputs["tokens"], inputs["mask"], jax.random.key(0),  # greedy: the key is unused
          prompt_positions=inputs["positions"], embed_extra=inputs["vision"]))
      for row, i in enumerate(idx):
        out[i] = sample.tokens[row, :sample.lengths[row]].tolist()
    return out

  def _next_token_probs(self, params, tokens, mask, positions, vision, ids):
    """Softmax of the next-token logits after each left-padded row, gathered at `ids`: [R, K]."""
    fns = self.fns
    rows, length = tokens.shape
    hidden, _ = fns.trunk(params, fns.embed(params, tokens, vision), positions, mask.astype(jnp.int32),
                          fns.init_cache(rows, length), 0)
    logits = fns.head(params, hidden[:, -1:])[:, 0].astype(jnp.float32)
    return jax.nn.softmax(logits, axis=-1)[:, ids]

  def next_token_probs(self, texts: Sequence[str], images: Sequence[Any], prefixes: Sequence[str],
                       candidates: Sequence[str]) -> np.ndarray:
    """P(next token = candidate) after each user turn plus the start of its answer: [N, K] float64.

    One forward pass per row (no sampling), in the same row and prompt buckets as `generate`, so
    it compiles once per bucket. Each candidate must be one token of this tokenizer; the returned
    probabilities are over the whole vocabulary (not renormalised over the candidates). A row
    longer than the largest prompt bucket gets probability 0 for every candidate and is counted in
    `num_overlong` (it serves the rewards' expected readout: module docstring).
    """
    if not (len(texts) == len(images) == len(prefixes)):
      raise ValueError(f"{len(texts)} texts, {len(images)} image entries and {len(prefixes)} prefixes; pass one "
                       "of each per row.")
    ids = single_token_ids(self.tokenizer, candidates)
    rows = [self.prompt_row(t, im, p) for t, im, p in zip(texts, images, prefixes)]
    out = np.zeros((len(rows), len(ids)), np.float64)
    for idx, inputs in self._row_chunks(rows, skip_overlong=True):
      probs = jax.device_get(self._probs_fn(self.params, inputs["tokens"], inputs["mask"], inputs["positions"],
                                            inputs["vision"], jnp.asarray(ids, jnp.int32)))
      out[idx] = probs[:len(idx)]
    return out

  def generate(self, texts: Sequence[str], images: Optional[Sequence[Any]] = None,
               max_new_tokens: int = 64, skip_overlong: bool = False) -> list[Optional[str]]:
    """One answer per text. images[i]: None, one uint8 [H, W, 3] image, or a list of them (shown
    before texts[i], in order). A text longer than the largest prompt bucket raises, or with
    skip_overlong is answered None and counted in `num_overlong`."""
    images = [None] * len(texts) if images is None else list(images)
    if len(images) != len(texts):
      raise ValueError(f"{len(texts)} texts but {len(images)} image entries; pass one entry (None for none) "
                       "per text.")
    if not texts:
      return []
    rows = [self.prompt_row(t, im) for t, im in zip(texts, images)]
    return [None if ids is None else self.decode(ids)
            for ids in self.generate_ids(rows, max_new_tokens, skip_overlong)]

  def __call__(self, requests: Sequence[JudgeRequest]) -> list[Optional[str]]:
    """The rewards Generator protocol: one answer per request, in order (one generate call per
    distinct max_new_tokens); None (unreadable) for a request longer than the largest prompt bucket."""
    answers: list[Optional[str]] = [""] * len(requests)
    by_limit: dict[int, list[int]] = {}
    for i, r in enumerate(requests):
      by_limit.setdefault(int(r.max_new_tokens), []).append(i)
    for limit, idx in by_limit.items():
      texts = self.generate([requests[i].text for i in idx], [requests[i].image for i in idx], limit,
                            skip_overlong=True)
      for i, text in zip(idx, texts):
        answers[i] = text
    return answers


# ---- from a checkpoint directory ----------------------------------------------------------
def image_config_from_dir(path: str | os.PathLike) -> QwenImageConfig:
  """QwenImageConfig from the checkpoint's preprocessor_config.json (min/max pixels, mean, std),
  in either transformers format; QwenImageConfig's defaults when the file is absent."""
  f = Path(path) / "preprocessor_config.json"
  if not f.is_file():
    return QwenImageConfig()
  d = json.loads(f.read_text())
  size = d.get("size") or {}
  fields = dict(min_pixels=d.get("min_pixels", size.get("shortest_edge")),
                max_pixels=d.get("max_pixels", size.get("longest_edge")),
                image_mean=d.get("image_mean"), image_std=d.get("image_std"))
  return QwenImageConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if v is not None})


def _with_chat_template(tokenizer: Any, path: str | os.PathLike) -> Any:
  """Attaches the processor's chat_template.json when the tokenizer carries no template."""
  f = Path(path) / "chat_template.json"
  if not getattr(tokenizer, "chat_template", None) and f.is_file():
    tokenizer.chat_template = json.loads(f.read_text())["chat_template"]
  return tokenizer


def generator_from_checkpoint(checkpoint: str | os.PathLike, generation: Optional[Mapping[str, Any]] = None,
                              tokenizer_path: Optional[str] = None) -> QwenVLGenerator:
  """A generator over a Flax directory (tools/convert.py --to flax) or a transformers checkpoint,
  with the tokenizer, chat template and image preprocessing found beside it. `generation` is a
  QwenVLGenerationConfig dict (None = defaults)."""
  config = QwenVLGenerationConfig.from_dict(generation)
  cfg, params = load_qwen_vl(checkpoint, param_dtype=config.param_dtype or None)
  if config.dtype:
    cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, dtype=config.dtype),
                              vision=dataclasses.replace(cfg.vision, dtype=config.dtype))
  tokenizer = _with_chat_template(load_tokenizer(tokenizer_path or str(checkpoint)), tokenizer_path or checkpoint)
  return QwenVLGenerator(QwenVL(cfg), params, tokenizer, config, image_config_from_dir(checkpoint))
