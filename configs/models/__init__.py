"""Model configs (`get_config()` -> the `model` ConfigDict) and the pieces they share.

Read into a JanusConfig by gotr1_jax.models.janus.janus_config_from_dict, or (family "qwen_vl") into a
QwenVLConfig by gotr1_jax.models.qwen_vl.qwen_vl_config_from_dict. Run configs import these
(`from configs.models import janus_pro_7b`); tools put the repository root on sys.path.
"""
from ml_collections import ConfigDict


def janus_pro(hidden: int, layers: int, heads: int, mlp: int) -> ConfigDict:
  """The Janus-Pro family at one LM size (GOT_R1_FACTS.md §2a, DeepSeek's config.json); the
  SigLIP-L/16 understanding encoder, the VQ-16 tokenizer and the generation path are shared.
  `vision` may be set to None for text-to-image runs (skips ~300M unused params)."""
  return ConfigDict(dict(
      family="janus",
      lm=dict(vocab_size=102400, hidden_size=hidden, intermediate_size=mlp, num_layers=layers,
              num_heads=heads, num_kv_heads=heads, rope_theta=10000.0, rms_norm_eps=1e-6,
              tie_embeddings=False, dtype="bfloat16", param_dtype="float32"),
      vision=dict(hidden_size=1024, num_layers=24, num_heads=16, mlp_dim=4096, image_size=384,
                  patch_size=16, layer_norm_eps=1e-6, dtype="bfloat16", param_dtype="float32"),
      vq=dict(embed_dim=8, num_embeddings=16384, latent_channels=256, base_channels=128,
              channel_multiplier=(1, 1, 2, 2, 4), num_res_blocks=2, num_patches=24, dtype="float32"),
      gen_aligner_depth=2, gen_head_dim=hidden, aligner_depth=2))


def qwen2_5_vl(vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, mlp: int, tie: bool) -> ConfigDict:
  """Qwen2.5-VL at one LM size (HF config.json of Qwen/Qwen2.5-VL-*-Instruct); the vision tower
  (32 layers, hidden 1280, windows of 112 px, full attention at 7/15/23/31) is shared and writes
  `hidden`-wide tokens. Read by gotr1_jax.models.qwen_vl.qwen_vl_config_from_dict."""
  return ConfigDict(dict(
      family="qwen_vl",
      lm=dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=mlp, num_layers=layers, num_heads=heads,
              num_kv_heads=kv_heads, rope_theta=1000000.0, rms_norm_eps=1e-6, qkv_bias=True, tie_embeddings=tie,
              mrope_section=(16, 24, 24), dtype="bfloat16", param_dtype="float32"),
      vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3, patch_size=14,
                  temporal_patch_size=2, spatial_merge_size=2, window_size=112,
                  fullatt_block_indexes=(7, 15, 23, 31), out_hidden_size=hidden, hidden_act="silu",
                  rope_theta=10000.0, dtype="bfloat16", param_dtype="float32"),
      image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
      tokens_per_second=2))
