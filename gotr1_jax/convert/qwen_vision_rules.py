"""transformers <-> Flax weight table of the Qwen2.5-VL vision tower (models/qwen_vision.py).

Owns the tower's rows of the table: torch key template, Flax path, transform. The machinery that
applies a table both ways (stacking per-block tensors into the scanned `blocks` axis, structure
checks, safetensors I/O) is convert/table.py; the LM half of Qwen2.5-VL has its own table.

Use: `table.torch_to_flax(state, qwen_vision_rules(cfg, prefix), sizes={"layer": cfg.depth})`.
"""
from __future__ import annotations

from gotr1_jax.convert.table import IDENTITY, LINEAR, Rule, reshape
from gotr1_jax.models.qwen_vision import QwenVisionConfig

# Where the tower's keys live in each checkpoint layout.
STANDALONE = ""  # transformers' Qwen2_5_VisionTransformerPretrainedModel on its own
TRANSFORMERS = "model.visual."  # transformers v5 Qwen2_5_VLForConditionalGeneration
ORIGINAL = "visual."  # Qwen's released checkpoints (pre-v5 transformers layout)


def qwen_vision_rules(cfg: QwenVisionConfig, prefix: str = STANDALONE) -> tuple[Rule, ...]:
  """Every tower param. Torch Linear weights are [out, in]; Flax kernels [in, out], with the
  attention's head axes split out ([E, 3, heads, head_dim] and [heads, head_dim, E]) exactly as
  transformers' `qkv(x).reshape(seq, 3, heads, head_dim)` reads them. `{layer}` is stacked."""
  p, b = prefix, f"{prefix}blocks.{{layer}}"
  e, n, h = cfg.hidden_size, cfg.num_heads, cfg.head_dim

  def linear(torch_name: str, flax_path: str) -> list[Rule]:
    return [Rule(f"{torch_name}.weight", f"{flax_path}/kernel", LINEAR),
            Rule(f"{torch_name}.bias", f"{flax_path}/bias", IDENTITY)]

  def norm(torch_name: str, flax_path: str) -> Rule:
    return Rule(f"{torch_name}.weight", f"{flax_path}/scale", IDENTITY)

  conv3d = (e, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size)
  return (
      # Conv3d [E, C, T, P, P] with kernel == stride is one [C*T*P*P, E] matmul.
      Rule(f"{p}patch_embed.proj.weight", "patch_embed/kernel",
           reshape(conv3d, (e, cfg.patch_dim)).then(LINEAR)),
      norm(f"{b}.norm1", "blocks/norm1"),
      norm(f"{b}.norm2", "blocks/norm2"),
      Rule(f"{b}.attn.qkv.weight", "blocks/attn/qkv/kernel", LINEAR.then(reshape((e, 3 * e), (e, 3, n, h)))),
      Rule(f"{b}.attn.qkv.bias", "blocks/attn/qkv/bias", reshape((3 * e,), (3, n, h))),
      Rule(f"{b}.attn.proj.weight", "blocks/attn/proj/kernel", LINEAR.then(reshape((e, e), (n, h, e)))),
      Rule(f"{b}.attn.proj.bias", "blocks/attn/proj/bias", IDENTITY),
      *linear(f"{b}.mlp.gate_proj", "blocks/mlp/gate_proj"),
      *linear(f"{b}.mlp.up_proj", "blocks/mlp/up_proj"),
      *linear(f"{b}.mlp.down_proj", "blocks/mlp/down_proj"),
      norm(f"{p}merger.ln_q", "merger/ln_q"),
      *linear(f"{p}merger.mlp.0", "merger/mlp_0"),
      *linear(f"{p}merger.mlp.2", "merger/mlp_2"),
  )
