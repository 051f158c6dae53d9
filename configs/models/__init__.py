"""Model configs (`get_config()` -> the `model` ConfigDict) and the pieces they share.

Read into a JanusConfig by gotr1_jax.models.janus.janus_config_from_dict. Run configs import these
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
