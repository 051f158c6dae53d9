"""Janus-Pro checkpoints <-> (JanusConfig, JanusPolicy params, VQModel params), in both layouts.

Owns one description of the policy's parameters (LM, gen_embed/gen_aligner/gen_head, SigLIP +
aligner) rendered in DeepSeek's original names (`language_model.model.*`, `gen_*`, `vision_model.*`,
`aligner.*`; GoT-R1 ships these) or transformers' `JanusForConditionalGeneration` names, the two
config.json formats, and `load_janus` / `save_janus`. The VQ part's rules are convert/janus_vq.py's;
the table machinery and safetensors I/O are convert/table.py's. It also implements tools/convert.py's
family interface (`to_flax`, `to_torch`, `verify`); the directory format is convert/flax_io.py's and
the torch parity check convert/janus_verify.py's.

Differences beyond names, handled here: DeepSeek fuses SigLIP's q/k/v into one `attn.qkv` tensor
(split on load, fused on save, like transformers' conversion script), keeps `pos_embed` as
[1, N, D], and carries keys Janus never runs (SigLIP's attention-pool head `attn_pool.*`), which are
dropped on load and so are absent from a DeepSeek-layout save.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np

from gotr1_jax.convert import flax_io, janus_vq
from gotr1_jax.convert.llm_rules import decoder_lm_rules
from gotr1_jax.convert.table import (CONV2D, IDENTITY, LINEAR, DEFAULT_MAX_SHARD_BYTES, Rule, check_structure,
                                     flax_to_torch, load_safetensors, reshape, save_safetensors, torch_to_flax)
from gotr1_jax.models.janus import JanusConfig, init_janus, janus_config_from_dict
from gotr1_jax.models.llm import LMConfig, resolve_dtype
from gotr1_jax.models.siglip import SigLIPConfig, depth_for_select_layer
from gotr1_jax.models.vq import VQConfig, VQModel

LAYOUTS = ("deepseek", "transformers")


@dataclasses.dataclass(frozen=True)
class JanusLayout:
  """How one checkpoint layout names the policy's modules."""

  name: str
  lm: str  # LLaMA body prefix
  lm_head: str
  gen_embed: str
  gen_aligner: str
  gen_head: str
  gen_head_proj: str  # gen_head's first Linear
  aligner: str
  mlp_layer: Callable[[int], str]  # Linear i of an aligner MLP
  vision: str  # SigLIP prefix
  patch_embed: str
  pos_embed: str
  block: str  # one SigLIP block, with the {vision_layer} placeholder
  norm1: str
  norm2: str
  attn: str
  qkv: tuple[str, str, str]  # q/k/v Linear names (DeepSeek's are split out of its fused `qkv`)
  attn_out: str
  post_norm: str
  pos_embed_batch_axis: bool  # pos_embed stored as [1, N, D]
  vq: janus_vq.VQLayout
  qkv_fused: bool = False  # q/k/v stored as one `attn.qkv` tensor [3D, ...]
  dropped: tuple[str, ...] = ()  # regexes of keys Janus never uses

  @property
  def fused_qkv(self) -> Optional[re.Pattern]:
    """The fused key `<block>.attn.qkv.(weight|bias)`; None for a layout with separate q/k/v."""
    if not self.qkv_fused:
      return None
    block = re.escape(self.vision + self.block).replace(re.escape("{vision_layer}"), r"\d+")
    return re.compile(rf"({block}{re.escape(self.attn)})qkv\.(weight|bias)")


DEEPSEEK = JanusLayout(
    name="deepseek", lm="language_model.model.", lm_head="language_model.lm_head.", gen_embed="gen_embed.",
    gen_aligner="gen_aligner.", gen_head="gen_head.", gen_head_proj="output_mlp_projector",
    aligner="aligner.", mlp_layer=lambda i: f"layers.{2 * i}",  # nn.Sequential(Linear, GELU, Linear)
    vision="vision_model.vision_tower.", patch_embed="patch_embed.proj", pos_embed="pos_embed",
    block="blocks.{vision_layer}.", norm1="norm1", norm2="norm2", attn="attn.", qkv=("q", "k", "v"),
    attn_out="proj", post_norm="norm", pos_embed_batch_axis=True, vq=janus_vq.DEEPSEEK, qkv_fused=True,
    dropped=(r"vision_model\.vision_tower\.attn_pool\..*",))
TRANSFORMERS = JanusLayout(
    name="transformers", lm="model.language_model.", lm_head="lm_head.",
    gen_embed="model.generation_embeddings.", gen_aligner="model.generation_aligner.",
    gen_head="model.generation_head.", gen_head_proj="proj_out", aligner="model.aligner.",
    mlp_layer=lambda i: "fc1" if i == 0 else f"hidden_layers.{i - 1}", vision="model.vision_model.",
    patch_embed="embeddings.patch_embedding", pos_embed="embeddings.position_embedding.weight",
    block="encoder.layers.{vision_layer}.", norm1="layer_norm1", norm2="layer_norm2", attn="self_attn.",
    qkv=("q_proj", "k_proj", "v_proj"), attn_out="projection_layer", post_norm="post_layernorm",
    pos_embed_batch_axis=False, vq=janus_vq.TRANSFORMERS)
_LAYOUTS = {"deepseek": DEEPSEEK, "transformers": TRANSFORMERS}
ALWAYS_DROPPED = (r".*\.rotary_emb\.inv_freq",)  # older transformers saved RoPE buffers


def layout_named(name: str) -> JanusLayout:
  if name not in _LAYOUTS:
    raise ValueError(f"Unknown Janus checkpoint layout {name!r}; choose one of {LAYOUTS}.")
  return _LAYOUTS[name]


# ----------------------------------------------------------------------------- the rule table
def janus_rules(cfg: JanusConfig, layout: JanusLayout) -> tuple[Rule, ...]:
  """Every JanusPolicy param in `layout`'s names ({layer}/{vision_layer} are stacked scan axes)."""

  def linear(torch_name: str, flax_path: str, bias: bool = True) -> list[Rule]:
    out = [Rule(f"{torch_name}.weight", f"{flax_path}/kernel", LINEAR)]
    return out + [Rule(f"{torch_name}.bias", f"{flax_path}/bias")] if bias else out

  def norm(torch_name: str, flax_path: str, bias: bool = True) -> list[Rule]:
    out = [Rule(f"{torch_name}.weight", f"{flax_path}/scale")]
    return out + [Rule(f"{torch_name}.bias", f"{flax_path}/bias")] if bias else out

  def mlp(torch_prefix: str, flax_path: str, depth: int) -> list[Rule]:
    return [r for i in range(depth)
            for r in linear(torch_prefix + layout.mlp_layer(i), f"{flax_path}/fc_{i}")]

  rules = decoder_lm_rules(cfg.lm, prefix=layout.lm, lm_head=layout.lm_head,
                           flax_prefix="language_model/")
  rules += [Rule(f"{layout.gen_embed}weight", "gen_embed/embedding"),
            *mlp(layout.gen_aligner, "gen_aligner", cfg.gen_aligner_depth),
            *linear(layout.gen_head + layout.gen_head_proj, "gen_head/proj_out"),
            *linear(layout.gen_head + "vision_head", "gen_head/vision_head")]
  if cfg.vision is not None:
    v, vb = layout.vision, layout.vision + layout.block
    pos_shape = (cfg.vision.num_patches, cfg.vision.hidden_size)
    rules += [Rule(f"{v}{layout.patch_embed}.weight", "vision_model/patch_embed/kernel", CONV2D),
              Rule(f"{v}{layout.patch_embed}.bias", "vision_model/patch_embed/bias"),
              Rule(v + layout.pos_embed, "vision_model/pos_embed",
                   reshape((1,) + pos_shape, pos_shape) if layout.pos_embed_batch_axis else IDENTITY),
              *norm(vb + layout.norm1, "vision_model/layers/norm1"),
              *norm(vb + layout.norm2, "vision_model/layers/norm2"),
              *[r for t, f in zip(layout.qkv, ("query", "key", "value"))
                for r in linear(vb + layout.attn + t, f"vision_model/layers/attn/{f}")],
              *linear(vb + layout.attn + layout.attn_out, "vision_model/layers/attn/out"),
              *linear(vb + "mlp.fc1", "vision_model/layers/mlp/fc1"),
              *linear(vb + "mlp.fc2", "vision_model/layers/mlp/fc2"),
              *norm(v + layout.post_norm, "vision_model/post_norm"),
              *mlp(layout.aligner, "aligner", cfg.aligner_depth)]
  return tuple(rules)


def split_fused_qkv(state: Mapping[str, Any], layout: JanusLayout) -> dict[str, Any]:
  """DeepSeek's [3D, ...] `attn.qkv` tensors -> three [D, ...] q/k/v keys (others unchanged)."""
  pattern, out = layout.fused_qkv, {}
  for key, value in state.items():
    m = pattern.fullmatch(key) if pattern else None
    if m is None:
      out[key] = value
      continue
    for name, part in zip(layout.qkv, np.split(np.asarray(value), 3, axis=0)):
      out[f"{m[1]}{name}.{m[2]}"] = part
  return out


def fuse_qkv(state: Mapping[str, Any], layout: JanusLayout) -> dict[str, Any]:
  """The exact inverse of split_fused_qkv."""
  if layout.fused_qkv is None:
    return dict(state)
  part = re.compile(rf"(.*\.)({'|'.join(map(re.escape, layout.qkv))})\.(weight|bias)")
  out, groups = {}, {}
  for key, value in state.items():
    m = part.fullmatch(key)
    fused = f"{m[1]}qkv.{m[3]}" if m else None
    if fused and layout.fused_qkv.fullmatch(fused):
      groups.setdefault(fused, {})[m[2]] = value
    else:
      out[key] = value
  for fused, parts in groups.items():
    if len(parts) != 3:
      raise ValueError(f"cannot fuse {fused!r}: only {sorted(parts)} of {layout.qkv} are present.")
    out[fused] = np.concatenate([parts[n] for n in layout.qkv], axis=0)
  return out


# ----------------------------------------------------------------------------- config.json
# transformers' LlamaConfig defaults: DeepSeek's language_config lists only what differs from them.
LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)
# DeepSeek's SigLIP_MODEL_CONFIG entry that Janus-Pro names (siglip_vit.py).
SIGLIP_LARGE = dict(width=1024, layers=24, heads=16, patch_size=16, mlp_ratio=4.0)
HAS_VISION_KEY = "gotr1_has_vision"  # False: saved without the understanding path
VQ_FIELDS = tuple(f.name for f in dataclasses.fields(VQConfig) if f.name not in ("dtype", "param_dtype"))


def _lm_from_llama(d: Mapping[str, Any]) -> LMConfig:
  d = {**LLAMA_DEFAULTS, **d}
  rope = d.get("rope_parameters") or {}
  return LMConfig(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
                  intermediate_size=d["intermediate_size"], num_layers=d["num_hidden_layers"],
                  num_heads=d["num_attention_heads"],
                  num_kv_heads=d.get("num_key_value_heads") or d["num_attention_heads"],
                  head_dim=d.get("head_dim"), rope_theta=float(rope.get("rope_theta", d["rope_theta"])),
                  rms_norm_eps=d["rms_norm_eps"], qkv_bias=bool(d.get("attention_bias", False)),
                  tie_embeddings=bool(d["tie_word_embeddings"]))


def _llama_from_lm(lm: LMConfig) -> dict:
  return dict(model_type="llama", vocab_size=lm.vocab_size, hidden_size=lm.hidden_size,
              intermediate_size=lm.intermediate_size, num_hidden_layers=lm.num_layers,
              num_attention_heads=lm.num_heads, num_key_value_heads=lm.num_kv_heads,
              head_dim=lm.resolved_head_dim, rope_theta=lm.rope_theta, rms_norm_eps=lm.rms_norm_eps,
              attention_bias=lm.qkv_bias, tie_word_embeddings=lm.tie_embeddings)


def _params(d: Mapping[str, Any], section: str) -> dict:
  if section not in d:
    raise ValueError(f"DeepSeek config.json lacks {section!r}; is this a Janus checkpoint?")
  return dict(d[section].get("params", {}))


def _from_deepseek_json(d: Mapping[str, Any]) -> JanusConfig:
  vis, aligner, gen_vision, gen_aligner, gen_head = (_params(d, f"{k}_config") for k in (
      "vision", "aligner", "gen_vision", "gen_aligner", "gen_head"))
  name = vis.get("model_name", "siglip_large_patch16_384")
  if name != "siglip_large_patch16_384" and not {"width", "layers", "heads"} <= set(vis):
    raise ValueError(f"vision model {name!r} is not supported: Janus-Pro uses siglip_large_patch16_384 "
                     "(another size needs width/layers/heads/patch_size/mlp_ratio in vision_config.params).")
  s = {**SIGLIP_LARGE, **vis}
  depth = depth_for_select_layer(s["layers"], s.get("select_layer", -1))
  vision = SigLIPConfig(hidden_size=s["width"], num_layers=depth, num_heads=s["heads"],
                        mlp_dim=int(s["width"] * s["mlp_ratio"]),
                        image_size=s.get("image_size", 384), patch_size=s["patch_size"])
  vq = {k: tuple(v) if isinstance(v, list) else v for k, v in gen_vision.items() if k in VQ_FIELDS}
  vq.update(num_embeddings=gen_vision.get("image_token_size", 16384), embed_dim=gen_vision.get("n_embed", 8))
  return JanusConfig(lm=_lm_from_llama(d.get("language_config", {})), vq=VQConfig(**vq), vision=vision,
                     gen_aligner_depth=gen_aligner.get("depth", 2),
                     gen_head_dim=gen_head.get("image_token_embed"), aligner_depth=aligner.get("depth", 2))


def _from_transformers_json(d: Mapping[str, Any]) -> JanusConfig:
  text, vis, vq = (dict(d.get(k) or {}) for k in ("text_config", "vision_config", "vq_config"))
  # transformers ties lm_head by the top-level flag, which JanusConfig defaults to True.
  text["tie_word_embeddings"] = d.get("tie_word_embeddings", True)
  side = lambda x: x if isinstance(x, int) else x[0]
  hidden = vis.get("hidden_size", 1024)
  vision = SigLIPConfig(hidden_size=hidden, num_layers=vis.get("num_hidden_layers", 24),
                        num_heads=vis.get("num_attention_heads", 16),
                        mlp_dim=int(hidden * vis.get("mlp_ratio", 4.0)),
                        image_size=side(vis.get("image_size", 384)), patch_size=side(vis.get("patch_size", 16)),
                        num_channels=vis.get("num_channels", 3), layer_norm_eps=vis.get("layer_norm_eps", 1e-6))
  vq_fields = {k: tuple(v) if isinstance(v, list) else v for k, v in vq.items() if k in VQ_FIELDS}
  return JanusConfig(lm=_lm_from_llama(text), vq=VQConfig(**vq_fields), vision=vision,
                     gen_aligner_depth=vq.get("num_hidden_layers", 2), gen_head_dim=vq.get("projection_dim"),
                     aligner_depth=vis.get("depth", 2))


def config_from_json(d: Mapping[str, Any], with_vision: bool = True) -> JanusConfig:
  """JanusConfig from either config.json: DeepSeek's `multi_modality` or transformers' `janus`.
  The understanding path is dropped when with_vision=False or the file says it holds none."""
  readers = {"multi_modality": _from_deepseek_json, "janus": _from_transformers_json}
  kind = d.get("model_type")
  if kind not in readers:
    raise ValueError(f"config.json has model_type {kind!r}; expected 'multi_modality' (DeepSeek) or 'janus' "
                     "(transformers).")
  cfg = readers[kind](d)
  keep_vision = with_vision and d.get(HAS_VISION_KEY, True)
  return cfg if keep_vision else dataclasses.replace(cfg, vision=None)


def config_to_json(cfg: JanusConfig, layout: JanusLayout) -> dict:
  """config.json for `layout`. Sizes DeepSeek's format cannot name (a non-Large SigLIP, a small
  VQ) are written as extra params that config_from_json reads back (DeepSeek's code ignores them).
  A policy without the understanding path still describes a default SigLIP (both formats need
  one) and is marked `gotr1_has_vision: false`."""
  hidden, vq = cfg.lm.hidden_size, cfg.vq
  vision = cfg.vision or SigLIPConfig()
  vq_fields = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(vq).items()
               if k in VQ_FIELDS and v is not None}
  if layout.name == "deepseek":
    mlp = lambda depth, input_dim: dict(cls="MlpProjector", params=dict(
        projector_type="mlp_gelu", depth=depth, input_dim=input_dim, n_embed=hidden))
    out = dict(model_type="multi_modality", architectures=["MultiModalityCausalLM"],
               language_config=_llama_from_lm(cfg.lm),
               vision_config=dict(cls="CLIPVisionTower", params=dict(
                   model_name="siglip_large_patch16_384", select_feature="same", select_layer=-1,
                   image_size=vision.image_size, width=vision.hidden_size, layers=vision.num_layers,
                   heads=vision.num_heads, patch_size=vision.patch_size,
                   mlp_ratio=vision.mlp_dim / vision.hidden_size)),
               aligner_config=mlp(cfg.aligner_depth, vision.hidden_size),
               gen_vision_config=dict(cls="VQ-16", params=dict(
                   vq_fields, image_token_size=vq.num_embeddings, n_embed=vq.embed_dim)),
               gen_aligner_config=mlp(cfg.gen_aligner_depth, vq.embed_dim),
               gen_head_config=dict(cls="vision_head", params=dict(
                   n_embed=hidden, image_token_embed=cfg.resolved_gen_head_dim,
                   image_token_size=vq.num_embeddings)))
  else:
    out = dict(model_type="janus", architectures=["JanusForConditionalGeneration"],
               tie_word_embeddings=cfg.lm.tie_embeddings, text_config=_llama_from_lm(cfg.lm),
               vision_config=dict(hidden_size=vision.hidden_size, num_hidden_layers=vision.num_layers,
                                  num_attention_heads=vision.num_heads, image_size=vision.image_size,
                                  patch_size=vision.patch_size, num_channels=vision.num_channels,
                                  mlp_ratio=vision.mlp_dim / vision.hidden_size,
                                  layer_norm_eps=vision.layer_norm_eps, projection_dim=hidden,
                                  depth=cfg.aligner_depth, num_image_tokens=vision.num_patches),
               vq_config=dict(vq_fields, projection_dim=cfg.resolved_gen_head_dim, image_token_embed_dim=hidden,
                              num_hidden_layers=cfg.gen_aligner_depth))
  return out if cfg.vision is not None else {**out, HAS_VISION_KEY: False}


# ----------------------------------------------------------------------------- load / save
def detect_layout(keys: Any) -> JanusLayout:
  keys = list(keys)
  for layout in (DEEPSEEK, TRANSFORMERS):
    if any(k.startswith(layout.lm) for k in keys):
      return layout
  raise ValueError(f"cannot tell the Janus layout: no key starts with {DEEPSEEK.lm!r} (DeepSeek) or "
                   f"{TRANSFORMERS.lm!r} (transformers). First keys: {sorted(keys)[:8]}")


def _cast(tree: Any, dtype: Optional[str]) -> Any:
  return tree if dtype is None else jax.tree.map(lambda x: np.asarray(x).astype(resolve_dtype(dtype)), tree)


def state_to_params(state: Mapping[str, Any], cfg: JanusConfig, layout: JanusLayout) -> tuple[dict, dict]:
  """A full torch state dict -> ({'params': policy}, {'params': vq}), checked against cfg's shapes."""
  vq_prefix = re.escape(layout.vq.prefix)
  ignore = [*ALWAYS_DROPPED, *layout.dropped, vq_prefix + ".*"]
  if cfg.vision is None:  # the understanding path is knowingly left out
    ignore += [re.escape(layout.vision) + ".*", re.escape(layout.aligner) + ".*"]
  sizes = {"layer": cfg.lm.num_layers, **({"vision_layer": cfg.vision.num_layers} if cfg.vision else {})}
  params = torch_to_flax(split_fused_qkv(state, layout), janus_rules(cfg, layout), sizes=sizes, ignore=ignore)
  vq_params = torch_to_flax(state, janus_vq.vq_rules(layout.vq), ignore=[f"(?!{vq_prefix}).*"])
  check_structure(params, jax.eval_shape(functools.partial(init_janus, cfg), jax.random.key(0))["params"])
  f = cfg.vq.downsample_factor
  images = np.zeros((1, f, f, cfg.vq.in_channels), np.float32)
  check_structure(vq_params, jax.eval_shape(VQModel(cfg.vq).init, jax.random.key(0), images)["params"])
  return {"params": params}, {"params": vq_params}


def params_to_state(params: Mapping[str, Any], vq_params: Mapping[str, Any], cfg: JanusConfig,
                    layout: JanusLayout) -> dict[str, np.ndarray]:
  """The inverse of state_to_params (for keys it keeps)."""
  unwrap = lambda t: t["params"] if "params" in t else t
  state = fuse_qkv(flax_to_torch(unwrap(params), janus_rules(cfg, layout)), layout)
  state.update(flax_to_torch(unwrap(vq_params), janus_vq.vq_rules(layout.vq)))
  return state


def load_janus(path: str | os.PathLike, *, with_vision: bool = True,
               param_dtype: Optional[str] = None) -> tuple[JanusConfig, dict, dict]:
  """Reads a checkpoint directory (config.json + safetensors, either layout, detected from the
  keys) -> (JanusConfig, {'params': policy}, {'params': vq}). with_vision=False skips the SigLIP
  understanding path. param_dtype (e.g. 'bfloat16') casts every array and sets the configs'
  param_dtype; None keeps the arrays as stored."""
  d = Path(path)
  if not (d / "config.json").exists():
    raise FileNotFoundError(f"{d / 'config.json'} not found; point load_janus at a Janus checkpoint "
                            "directory (config.json + *.safetensors).")
  cfg = config_from_json(json.loads((d / "config.json").read_text()), with_vision)
  if param_dtype is not None:
    vision = dataclasses.replace(cfg.vision, param_dtype=param_dtype) if cfg.vision else None
    cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, param_dtype=param_dtype), vision=vision,
                              vq=dataclasses.replace(cfg.vq, param_dtype=param_dtype))
  state = load_safetensors(d)
  params, vq_params = state_to_params(state, cfg, detect_layout(state))
  return cfg, _cast(params, param_dtype), _cast(vq_params, param_dtype)


def save_janus(path: str | os.PathLike, params: Mapping[str, Any], vq_params: Mapping[str, Any],
               config: JanusConfig, layout: str = "deepseek",
               max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
  """Writes config.json + safetensors in `layout` ('deepseek' or 'transformers'); returns the files."""
  lay = layout_named(layout)
  files = save_safetensors(params_to_state(params, vq_params, config, lay), path, max_shard_bytes)
  (Path(path) / "config.json").write_text(json.dumps(config_to_json(config, lay), indent=2) + "\n")
  return files + [Path(path) / "config.json"]


# ----------------------------------------------------------------------------- the convert CLI
# tools/convert.py's family interface: to_flax, to_torch, verify (the directory format is flax_io's).
FAMILY = "janus"
GROUPS = ("params", "vq_params")


def save_flax_janus(path: str | os.PathLike, config: JanusConfig, params: Mapping[str, Any],
                    vq_params: Mapping[str, Any], max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
  """Our Flax directory: the policy under `params/`, the VQ under `vq_params/` (convert/flax_io.py)."""
  return flax_io.save_flax_dir(path, FAMILY, dataclasses.asdict(config),
                               {"params": params, "vq_params": vq_params}, max_shard_bytes)


def is_flax_janus(path: str | os.PathLike) -> bool:
  return flax_io.is_flax_dir(path, FAMILY)


def load_flax_janus(path: str | os.PathLike) -> tuple[JanusConfig, dict, dict]:
  """A directory written by save_flax_janus -> (JanusConfig, {'params': policy}, {'params': vq}),
  each checked against the config's shapes."""
  model, trees = flax_io.load_flax_dir(path, FAMILY, GROUPS)
  cfg = janus_config_from_dict(model)
  check_structure(trees["params"]["params"],
                  jax.eval_shape(functools.partial(init_janus, cfg), jax.random.key(0))["params"])
  f = cfg.vq.downsample_factor
  images = np.zeros((1, f, f, cfg.vq.in_channels), np.float32)
  expected = jax.eval_shape(VQModel(cfg.vq).init, jax.random.key(0), images)["params"]
  check_structure(trees["vq_params"]["params"], expected)
  return cfg, trees["params"], trees["vq_params"]


def load_any_janus(path: str | os.PathLike, **kwargs) -> tuple[JanusConfig, dict, dict]:
  """A Flax directory (to_flax's) or a torch checkpoint in either layout; kwargs go to load_janus."""
  return load_flax_janus(path) if is_flax_janus(path) else load_janus(path, **kwargs)


def to_flax(src: str | os.PathLike, dst: str | os.PathLike) -> None:
  """A DeepSeek- or transformers-layout checkpoint directory -> our Flax directory (+ tokenizer)."""
  cfg, params, vq_params = load_janus(src)
  save_flax_janus(dst, cfg, params, vq_params)
  flax_io.copy_tokenizer_files(src, dst)


def to_torch(src: str | os.PathLike, dst: str | os.PathLike, layout: str = "deepseek") -> None:
  """Our Flax directory -> a torch checkpoint in `layout` ('deepseek' or 'transformers')."""
  cfg, params, vq_params = load_flax_janus(src)
  save_janus(dst, params, vq_params, cfg, layout)
  flax_io.copy_tokenizer_files(src, dst)


def verify(flax_dir: str | os.PathLike, torch_dir: str | os.PathLike) -> dict[str, float]:
  """Max relative error of our Flax model (from flax_dir) against the torch reference (from
  torch_dir) on the same random inputs, fp32: {'text_logits', 'image_logits', 'vq_decode'}.
  The reference is transformers' JanusForConditionalGeneration; see convert/janus_verify.py."""
  from gotr1_jax.convert import janus_verify  # torch is needed only here
  return janus_verify.verify(flax_dir, torch_dir)
