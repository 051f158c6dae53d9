"""Shared test fixtures: tiny transformers LLaMA/Qwen2 models and their weights as our params."""
from __future__ import annotations

import numpy as np
import torch
import transformers

from gotr1_jax.convert.llm_rules import hf_lm_to_params as params_from_hf  # noqa: F401
from gotr1_jax.convert.llm_rules import lm_config_from_hf  # noqa: F401


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


def state_dict_numpy(model) -> dict[str, np.ndarray]:
  return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}

