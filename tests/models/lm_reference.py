"""Shared test fixtures: tiny transformers LLaMA/Qwen2 models and their weights as our params."""
from __future__ import annotations

import numpy as np
import torch
import transformers

from gotr1_jax.models import llm


def tiny_hf_config(family: str, **overrides):
  common = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                rope_theta=10000.0, max_position_embeddings=256, tie_word_embeddings=False,
                pad_token_id=0, bos_token_id=1, eos_token_id=2)
  common.update(overrides)
  if family == "llama":
    return transformers.LlamaConfig(**common)
  if family == "qwen2":
    return transformers.Qwen2Config(**common)
  raise ValueError(family)


def tiny_hf_model(family: str, seed: int = 0, **overrides):
  torch.manual_seed(seed)
  cfg = tiny_hf_config(family, **overrides)
  cls = transformers.LlamaForCausalLM if family == "llama" else transformers.Qwen2ForCausalLM
  model = cls(cfg).eval().float()
  with torch.no_grad():  # make norms and biases non-trivial so parity checks them
    for name, p in model.named_parameters():
      if "norm" in name or name.endswith("bias"):
        p.add_(0.1 * torch.randn_like(p))
  return model


def lm_config_from_hf(hf_cfg, **overrides) -> llm.LMConfig:
  kw = dict(vocab_size=hf_cfg.vocab_size, hidden_size=hf_cfg.hidden_size,
            intermediate_size=hf_cfg.intermediate_size, num_layers=hf_cfg.num_hidden_layers,
            num_heads=hf_cfg.num_attention_heads, num_kv_heads=hf_cfg.num_key_value_heads,
            rope_theta=float(getattr(hf_cfg, "rope_theta", None) or hf_cfg.rope_parameters["rope_theta"]),
            rms_norm_eps=hf_cfg.rms_norm_eps,
            qkv_bias=hf_cfg.model_type == "qwen2", tie_embeddings=hf_cfg.tie_word_embeddings)
  kw.update(overrides)
  return llm.LMConfig(**kw)


def state_dict_numpy(model) -> dict[str, np.ndarray]:
  return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def params_from_hf(model, config: llm.LMConfig):
  """Our DecoderLM params from a transformers Llama/Qwen2 causal LM (stacked over layers)."""
  sd = state_dict_numpy(model)
  L = config.num_layers

  def stack(fmt, transpose=True):
    arrs = [sd[fmt.format(i)] for i in range(L)]
    return np.stack([a.T if transpose else a for a in arrs])

  attn = {}
  for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
    attn[name] = {"kernel": stack("model.layers.{}.self_attn." + name + ".weight")}
    if config.qkv_bias and name != "o_proj":
      attn[name]["bias"] = stack("model.layers.{}.self_attn." + name + ".bias", False)
  mlp = {n: {"kernel": stack("model.layers.{}.mlp." + n + ".weight")} for n in ("gate_proj", "up_proj", "down_proj")}
  params = {
      "embed_tokens": {"embedding": sd["model.embed_tokens.weight"]},
      "final_norm": {"scale": sd["model.norm.weight"]},
      "layers": {"attn": attn, "mlp": mlp,
                 "input_norm": {"scale": stack("model.layers.{}.input_layernorm.weight", False)},
                 "post_attn_norm": {"scale": stack("model.layers.{}.post_attention_layernorm.weight", False)}},
  }
  if not config.tie_embeddings:
    params["lm_head"] = {"kernel": sd["lm_head.weight"].T}
  return {"params": params}
