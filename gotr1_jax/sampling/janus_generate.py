"""GoT-R1's inference procedure for Janus, batched and compiled: prompt -> reasoning chain -> image.

Owns the prompt template, phase 1 (one text `Sampler` that stops on `<begin_of_image>` or the chain
cap), phase 2 (one image-token `Sampler` over [conditional; unconditional] rows with CFG), the
length buckets of both phases, VQ decoding to pixels, and building all of it from a checkpoint
directory. It does not own the models, the sampling loop (sampling/autoregressive.py), weight
conversion (convert/janus.py) or the GRPO batch layout (rl/janus_rollout.py).

The procedure follows GoT-R1's infer.py: the prompt is BOS + `PROMPT_TEMPLATE`; the chain is
sampled until `<begin_of_image>` or `max_chain_tokens` (then `<begin_of_image>` is appended); the
image phase re-reads prompt + chain + `<begin_of_image>` and samples `num_image_tokens` codes with
logits u + w (c - u), the unconditional row being the same sequence with every token except the
first and the last replaced by the pad token (still attended, as in the reference). Unlike
infer.py, which draws one chain and N images from it, every one of the N samples of a prompt here
has its own chain (a GRPO group), and all rows of a call run in one batch.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from gotr1_jax.convert import janus as convert
from gotr1_jax.data.chain import SPECIAL_TOKENS as CHAIN_TOKENS
from gotr1_jax.data.chain import Obj, parse_chain
from gotr1_jax.models.janus import JanusPolicy
from gotr1_jax.models.vq import VQModel, to_uint8
from gotr1_jax.sampling.autoregressive import Sampler, SamplingConfig
from gotr1_jax.sampling.buckets import bucket_length, left_pad, pad_to_bucket
from gotr1_jax.sampling.janus import janus_decode_fns

# GoT-R1's user turn in DeepSeek's SFT format (roles User/Assistant, a blank line as separator,
# empty system prompt); the tokenizer adds BOS.
PROMPT_TEMPLATE = ("User: Follow the caption to generate an image through a chain of thought "
                   "process: {prompt}\n\nAssistant:")
IMAGE_START = "<begin_of_image>"
DEEPSEEK_PAD = "<｜▁pad▁｜>"  # Janus' VLChatProcessor pad tag, used when the tokenizer names no pad


def format_prompt(prompt: str, template: str = PROMPT_TEMPLATE) -> str:
  """The Janus / GoT-R1 user turn for a caption (BOS is added by the tokenizer)."""
  return template.format(prompt=prompt.strip())


@dataclasses.dataclass(frozen=True)
class JanusGenerationConfig:
  """How chains and images are sampled. Defaults are GoT-R1's infer.py."""

  max_chain_tokens: int = 600  # phase-1 cap; `<begin_of_image>` is appended when it is hit
  cfg_weight: float = 5.0  # logits = u + w (c - u); w <= 1 samples without CFG, as infer.py
  text_temperature: float = 1.0
  image_temperature: float = 1.0
  greedy_text: bool = False
  greedy_image: bool = False
  prompt_buckets: tuple[int, ...] = (64, 128, 256)  # phase 1: BOS + templated prompt
  # Phase 2: prompt + chain + <begin_of_image>; the largest must hold the largest prompt bucket
  # plus a capped chain.
  image_prompt_buckets: tuple[int, ...] = (128, 256, 512, 896)
  decode_batch_size: int = 8  # images per VQ decode call (one fixed shape, one compile)
  # Both phases' KV caches grow this many slots at a time (SamplingConfig.cache_block); 0 = the
  # whole bucket + cap from the first token, one loop and one compile per phase. A long cap decodes
  # faster in blocks (configs/shapes_demo.py: 32), each block one more loop to compile.
  cache_block: int = 0
  template: str = PROMPT_TEMPLATE
  image_start_token: str = IMAGE_START
  pad_token: str = ""  # "" = the tokenizer's pad token, else DeepSeek's "<｜▁pad▁｜>"

  def __post_init__(self):
    for name in ("prompt_buckets", "image_prompt_buckets"):
      object.__setattr__(self, name, tuple(sorted(int(b) for b in getattr(self, name))))
    if self.max_chain_tokens < 1 or self.decode_batch_size < 1:
      raise ValueError("max_chain_tokens and decode_batch_size must be >= 1, got "
                       f"{self.max_chain_tokens} and {self.decode_batch_size}.")
    need = self.prompt_buckets[-1] + self.max_chain_tokens + 1
    if self.image_prompt_buckets[-1] < need:
      raise ValueError(f"image_prompt_buckets {self.image_prompt_buckets} cannot hold the largest prompt "
                       f"bucket ({self.prompt_buckets[-1]}) plus a capped chain ({self.max_chain_tokens} + 1): "
                       f"add a bucket >= {need}.")
    if "{prompt}" not in self.template:
      raise ValueError(f"template must contain '{{prompt}}', got {self.template!r}.")

  @property
  def use_cfg(self) -> bool:
    return self.cfg_weight > 1.0

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> JanusGenerationConfig:
    """From a config dict / ConfigDict, naming unknown fields."""
    d = dict(d.to_dict() if hasattr(d, "to_dict") else d)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
      raise ValueError(f"generation config has unknown fields {unknown}; known: {sorted(known)}.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclasses.dataclass(frozen=True)
class SpecialIds:
  bos: int
  image_start: int
  pad: int


def _token_id(tokenizer: Any, token: str) -> Optional[int]:
  return tokenizer.get_vocab().get(token)


def prepare_tokenizer(tokenizer: Any, config: JanusGenerationConfig) -> SpecialIds:
  """Adds the four chain tokens (ordinary tokens, as GoT-R1's processor does) when missing and
  returns the ids the procedure needs; a missing one raises naming the fix."""
  missing = [t for t in CHAIN_TOKENS if _token_id(tokenizer, t) is None]
  if missing:
    tokenizer.add_tokens(missing)
  image_start = _token_id(tokenizer, config.image_start_token)
  if image_start is None:
    raise ValueError(f"the tokenizer has no {config.image_start_token!r} token; use the tokenizer that "
                     "ships with the Janus checkpoint or set generation.image_start_token.")
  pad_name = config.pad_token or tokenizer.pad_token or DEEPSEEK_PAD
  pad = _token_id(tokenizer, pad_name)
  if pad is None:
    raise ValueError(f"the tokenizer has no pad token {pad_name!r}; set generation.pad_token to one it has.")
  if tokenizer.bos_token_id is None:
    raise ValueError("the tokenizer names no BOS token; Janus prompts start with BOS.")
  return SpecialIds(bos=int(tokenizer.bos_token_id), image_start=int(image_start), pad=int(pad))


@dataclasses.dataclass
class JanusSample:
  """One (prompt, chain, image) sample."""

  prompt: str
  chain: str  # decoded chain text, without <begin_of_image>
  objects: list[Obj]  # boxes parsed from the chain (gotr1_jax/data/chain.py)
  chain_ids: list[int]  # chain token ids, ending with <begin_of_image>
  chain_logps: np.ndarray  # [len(chain_ids)] sampling log-probs (0 for an appended <begin_of_image>)
  chain_capped: bool  # the cap was hit: <begin_of_image> was appended, not sampled
  image_tokens: np.ndarray  # [num_image_tokens] VQ code ids, row-major grid
  image_logps: np.ndarray  # [num_image_tokens] log-probs under the sampled (CFG, tempered) distribution
  image: Optional[np.ndarray]  # [H, W, 3] uint8; None when the images were not sampled


@dataclasses.dataclass
class JanusBatch:
  """Everything one `generate_batch` call produced; R rows, groups of a prompt contiguous."""

  prompts: list[str]  # [R] captions
  prompt_ids: list[list[int]]  # [R] BOS + templated prompt
  chain_ids: list[list[int]]  # [R] chains, each ending with <begin_of_image>
  chain_logps: list[np.ndarray]  # [R] like chain_ids; 0 for an appended <begin_of_image>
  chain_capped: np.ndarray  # [R] bool
  chains: list[str]  # [R] decoded chain text
  image_prompt_tokens: np.ndarray  # [R, P2] phase 2's conditional rows: left-padded prompt + chain
  image_prompt_mask: np.ndarray  # [R, P2]
  image_tokens: np.ndarray  # [R, num_image_tokens] ([R, 0] when the images were not sampled)
  image_logps: np.ndarray  # [R, num_image_tokens] ([R, 0] likewise)
  images: Optional[np.ndarray]  # [R, H, W, 3] uint8; None when the images were not sampled

  def samples(self) -> list[JanusSample]:
    return [JanusSample(prompt=p, chain=c, objects=parse_chain(c), chain_ids=ids, chain_logps=lp,
                        chain_capped=bool(cap), image_tokens=tok, image_logps=ilp, image=img)
            for p, c, ids, lp, cap, tok, ilp, img in zip(
                self.prompts, self.chains, self.chain_ids, self.chain_logps, self.chain_capped,
                self.image_tokens, self.image_logps,
                [None] * len(self.prompts) if self.images is None else self.images)]


def unconditional_rows(seqs: Sequence[Sequence[int]], pad_id: int) -> list[list[int]]:
  """CFG's unconditional prompts: every token except the first (BOS) and the last
  (<begin_of_image>) replaced by `pad_id`; lengths unchanged, so the rows stay aligned."""
  return [[s[0]] + [pad_id] * (len(s) - 2) + [s[-1]] for s in seqs]


class JanusGenerator:
  """The two-phase procedure over one policy, VQ decoder and tokenizer. Holds three compiled
  functions (chain sampler, image sampler, VQ decode); each traces once per row count and bucket."""

  def __init__(self, policy: JanusPolicy, vq_model: VQModel, tokenizer: Any,
               config: JanusGenerationConfig = JanusGenerationConfig()):
    self.policy, self.vq_model, self.tokenizer, self.config = policy, vq_model, tokenizer, config
    self.ids = prepare_tokenizer(tokenizer, config)
    vocab = policy.config.lm.vocab_size
    if len(tokenizer) > vocab:
      raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the LM embeds {vocab}; use the "
                       "checkpoint's own tokenizer (the chain tokens must have embedding rows).")
    self.num_image_tokens = policy.config.num_image_tokens
    self.text_sampler = Sampler(janus_decode_fns(policy, "text"), SamplingConfig(
        max_new_tokens=config.max_chain_tokens, temperature=config.text_temperature,
        greedy=config.greedy_text, stop_tokens=(self.ids.image_start,), pad_id=self.ids.pad,
        cache_block=config.cache_block))
    self.image_sampler = Sampler(janus_decode_fns(policy, "image"), SamplingConfig(
        max_new_tokens=self.num_image_tokens, temperature=config.image_temperature,
        greedy=config.greedy_image, pad_id=0, allowed_vocab=(0, policy.config.image_vocab_size),
        cfg_weight=config.cfg_weight if config.use_cfg else None, cache_block=config.cache_block))
    self._decode = jax.jit(lambda vq_params, ids: to_uint8(
        vq_model.apply(vq_params, ids, method=VQModel.decode_tokens)))

  def tokenize(self, prompt: str) -> list[int]:
    """BOS + the templated prompt."""
    ids = list(self.tokenizer(format_prompt(prompt, self.config.template))["input_ids"])
    return ids if ids and ids[0] == self.ids.bos else [self.ids.bos] + ids

  def generate(self, params: Any, vq_params: Any, prompts: Sequence[str], num_samples: int,
               rng: jax.Array) -> list[JanusSample]:
    """`num_samples` samples per prompt (groups contiguous), all in one batch."""
    return self.generate_batch(params, vq_params, prompts, rng, num_samples).samples()

  def generate_batch(self, params: Any, vq_params: Any, prompts: Sequence[str], rng: jax.Array,
                     num_samples: int = 1, images: bool = True) -> JanusBatch:
    """Runs both phases and the VQ decoder on `prompts`, each repeated `num_samples` times.

    images=False stops after phase 1 (for a run whose loss and reward read the chain alone): the
    chains are those images=True draws from the same rng; image_tokens/image_logps are [R, 0] and
    images None."""
    if num_samples < 1 or not prompts:
      raise ValueError(f"need at least one prompt and num_samples >= 1, got {len(prompts)} and {num_samples}.")
    rows = [p for p in prompts for _ in range(num_samples)]
    prompt_ids = [self.tokenize(p) for p in rows]
    text_rng, image_rng = jax.random.split(rng)
    chain_ids, chain_logps, capped = self.sample_chains(params, prompt_ids, text_rng)
    if images:
      tokens, mask, image_tokens, image_logps = self.sample_images(params, prompt_ids, chain_ids, image_rng)
      pixels = self.decode_images(vq_params, image_tokens)
    else:
      tokens, mask = self.condition_rows(prompt_ids, chain_ids)
      image_tokens, image_logps = np.zeros((len(rows), 0), np.int32), np.zeros((len(rows), 0), np.float32)
      pixels = None
    return JanusBatch(
        prompts=rows, prompt_ids=prompt_ids, chain_ids=chain_ids, chain_logps=chain_logps,
        chain_capped=capped, chains=[self.decode_chain(c) for c in chain_ids],
        image_prompt_tokens=tokens, image_prompt_mask=mask, image_tokens=image_tokens,
        image_logps=image_logps, images=pixels)

  # ---- the phases -------------------------------------------------------------------------
  def sample_chains(self, params: Any, prompt_ids: Sequence[Sequence[int]],
                    rng: jax.Array) -> tuple[list[list[int]], list[np.ndarray], np.ndarray]:
    """Phase 1: (chains ending with <begin_of_image>, their log-probs, capped [R] bool)."""
    tokens, mask = pad_to_bucket(prompt_ids, self.config.prompt_buckets, self.ids.pad)
    out = jax.device_get(self.text_sampler(params, tokens, mask, rng))
    chains, logps = [], []
    for row, row_logps, n, finished in zip(out.tokens, out.logps, out.lengths, out.finished):
      chain, lp = row[:n].tolist(), np.asarray(row_logps[:n], np.float32)
      if not finished:  # the cap was hit: <begin_of_image> is appended, not sampled
        chain, lp = chain + [self.ids.image_start], np.append(lp, np.float32(0.0))
      chains.append(chain)
      logps.append(lp)
    return chains, logps, ~np.asarray(out.finished, bool)

  def sample_images(self, params: Any, prompt_ids: Sequence[Sequence[int]],
                    chain_ids: Sequence[Sequence[int]], rng: jax.Array):
    """Phase 2: (cond prompt tokens [R, P2], mask [R, P2], image tokens [R, N], log-probs [R, N])."""
    tokens, mask = self.condition_rows(prompt_ids, chain_ids)
    rows_tokens, rows_mask = tokens, mask
    if self.config.use_cfg:
      seqs = [list(p) + list(c) for p, c in zip(prompt_ids, chain_ids)]
      uncond, _ = left_pad(unconditional_rows(seqs, self.ids.pad), tokens.shape[1], self.ids.pad)
      rows_tokens, rows_mask = np.concatenate([tokens, uncond]), np.concatenate([mask, mask])
    out = jax.device_get(self.image_sampler(params, rows_tokens, rows_mask, rng))
    return tokens, mask, np.asarray(out.tokens, np.int32), np.asarray(out.logps, np.float32)

  def condition_rows(self, prompt_ids: Sequence[Sequence[int]],
                     chain_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Phase 2's conditional rows: prompt + chain left-padded to the image-prompt bucket ([R, P2] x 2)."""
    seqs = [list(p) + list(c) for p, c in zip(prompt_ids, chain_ids)]
    return left_pad(seqs, bucket_length(max(len(s) for s in seqs), self.config.image_prompt_buckets), self.ids.pad)

  def decode_images(self, vq_params: Any, image_tokens: np.ndarray) -> np.ndarray:
    """[R, N] codes -> [R, H, W, 3] uint8, in fixed chunks of decode_batch_size (zero-padded)."""
    size, rows = self.config.decode_batch_size, image_tokens.shape[0]
    padded = np.zeros((-(-rows // size) * size, image_tokens.shape[1]), np.int32)
    padded[:rows] = image_tokens
    chunks = [np.asarray(self._decode(vq_params, jnp.asarray(padded[i:i + size])))
              for i in range(0, padded.shape[0], size)]
    return np.concatenate(chunks)[:rows]

  def decode_chain(self, chain_ids: Sequence[int]) -> str:
    """Chain text without the trailing <begin_of_image>; chain tokens are kept as written."""
    body = list(chain_ids[:-1]) if chain_ids and chain_ids[-1] == self.ids.image_start else list(chain_ids)
    return self.tokenizer.decode(body, skip_special_tokens=False, clean_up_tokenization_spaces=False)


# ---- from a checkpoint directory ----------------------------------------------------------
def load_tokenizer(path: str) -> Any:
  """A checkpoint's tokenizer: a directory with tokenizer files, or one tokenizer.json."""
  if os.path.isfile(path):
    return PreTrainedTokenizerFast(tokenizer_file=path, clean_up_tokenization_spaces=False)
  if not any(os.path.exists(os.path.join(path, f)) for f in ("tokenizer.json", "tokenizer_config.json")):
    raise FileNotFoundError(f"no tokenizer in {path}; convert the checkpoint with its tokenizer files or "
                            "pass --tokenizer DIR_OR_TOKENIZER_JSON.")
  # AutoTokenizer also reads the directory's config.json to pick a class; DeepSeek's layout says
  # model_type "multi_modality", which transformers does not know, and it warns that the checkpoint
  # may not fit "a model of type ''" though only the tokenizer files are used. Quiet just that.
  config_logger = logging.getLogger("transformers.configuration_utils")
  level = config_logger.level
  config_logger.setLevel(logging.ERROR)
  try:
    return AutoTokenizer.from_pretrained(path)
  finally:
    config_logger.setLevel(level)


def generator_from_checkpoint(checkpoint: str, config: Mapping[str, Any],
                              tokenizer_path: Optional[str] = None) -> tuple[JanusGenerator, Any, Any]:
  """(generator, policy params, VQ params) for a Flax directory (tools/convert.py --to flax) or a
  torch checkpoint in either layout. `config` is a run config with `generation` and optionally
  `dtype` (LM compute dtype) and `param_dtype` ('' keeps the stored dtype); see
  configs/generate_janus.py. The understanding path (SigLIP) is dropped: text-to-image needs none."""
  cfg, params, vq_params = convert.load_any_janus(checkpoint)
  param_dtype = config.get("param_dtype") or None
  lm = dataclasses.replace(cfg.lm, dtype=config.get("dtype") or cfg.lm.dtype,
                           param_dtype=param_dtype or cfg.lm.param_dtype)
  cfg = dataclasses.replace(cfg, lm=lm, vision=None)
  params = {"params": {k: v for k, v in params["params"].items() if k not in ("vision_model", "aligner")}}
  if param_dtype is not None:
    params = jax.tree.map(lambda x: jnp.asarray(x, param_dtype), params)
  tokenizer = load_tokenizer(tokenizer_path or checkpoint)
  generation = JanusGenerationConfig.from_dict(config["generation"])
  return JanusGenerator(JanusPolicy(cfg), VQModel(cfg.vq), tokenizer, generation), params, vq_params
