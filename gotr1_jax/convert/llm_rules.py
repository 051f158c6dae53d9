"""The one rule table for our `DecoderLM` from transformers' LLaMA / Qwen2 parameter names.

Owns the mapping `{prefix}layers.{layer}.self_attn.q_proj.weight` ... -> `layers/attn/q_proj/kernel`
(per-layer tensors stacked on the scanned layer axis), reused by every family whose LM is a
LLaMA/Qwen2 decoder (Janus-Pro's `language_model.model.`, plain `model.` checkpoints).
"""
from __future__ import annotations

from typing import Any

from gotr1_jax.convert.table import LINEAR, Rule, torch_to_flax
from gotr1_jax.models import llm


def decoder_lm_rules(cfg: llm.LMConfig, prefix: str = "model.", lm_head: str = "lm_head.",
                     flax_prefix: str = "") -> list[Rule]:
  """Rules for every DecoderLM param. `prefix` precedes `layers.`/`embed_tokens.`/`norm.`;
  `lm_head` is the head's key prefix; a tied head maps the (optional) shared tensor to nothing."""
  f = flax_prefix
  layer = f"{prefix}layers.{{layer}}."

  def linear(torch_name: str, flax_path: str, bias: bool = False) -> list[Rule]:
    out = [Rule(f"{torch_name}.weight", f"{flax_path}/kernel", LINEAR)]
    return out + [Rule(f"{torch_name}.bias", f"{flax_path}/bias")] if bias else out

  rules = [Rule(f"{prefix}embed_tokens.weight", f"{f}embed_tokens/embedding"),
           Rule(f"{prefix}norm.weight", f"{f}final_norm/scale"),
           Rule(f"{layer}input_layernorm.weight", f"{f}layers/input_norm/scale"),
           Rule(f"{layer}post_attention_layernorm.weight", f"{f}layers/post_attn_norm/scale")]
  for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
    rules += linear(f"{layer}self_attn.{name}", f"{f}layers/attn/{name}", cfg.qkv_bias and name != "o_proj")
  for name in ("gate_proj", "up_proj", "down_proj"):
    rules += linear(f"{layer}mlp.{name}", f"{f}layers/mlp/{name}")
  if cfg.tie_embeddings:
    rules.append(Rule(f"{lm_head}weight", None, optional=True))
  else:
    rules += linear(lm_head[:-1], f"{f}lm_head")
  return rules


def lm_config_from_hf(hf_cfg: Any, **overrides: Any) -> llm.LMConfig:
  """LMConfig from a transformers LlamaConfig / Qwen2Config / Qwen2_5_VLTextConfig (whose tied head
  is set on the outer Qwen2_5_VLConfig: pass tie_embeddings as an override)."""
  rope = getattr(hf_cfg, "rope_parameters", None) or {}
  theta = getattr(hf_cfg, "rope_theta", None) or rope.get("rope_theta", 10000.0)
  mrope = rope.get("mrope_section")
  kw = dict(vocab_size=hf_cfg.vocab_size, hidden_size=hf_cfg.hidden_size,
            intermediate_size=hf_cfg.intermediate_size, num_layers=hf_cfg.num_hidden_layers,
            num_heads=hf_cfg.num_attention_heads, num_kv_heads=hf_cfg.num_key_value_heads,
            head_dim=getattr(hf_cfg, "head_dim", None), rope_theta=float(theta),
            rms_norm_eps=hf_cfg.rms_norm_eps, qkv_bias=hf_cfg.model_type in ("qwen2", "qwen2_5_vl_text"),
            tie_embeddings=bool(getattr(hf_cfg, "tie_word_embeddings", False)),
            mrope_section=tuple(mrope) if mrope else None)
  kw.update(overrides)
  return llm.LMConfig(**kw)


def hf_lm_to_params(model: Any, cfg: llm.LMConfig) -> dict:
  """Our `{'params': ...}` from a transformers causal LM module (weights copied to numpy fp32)."""
  state = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
  return {"params": torch_to_flax(state, decoder_lm_rules(cfg), sizes={"layer": cfg.num_layers})}
