"""A tiny random Janus (every path present, seconds on a CPU): tests, smoke runs, ShapesWorld policies.

  python tools/train.py --config configs/<run>.py   (a run config sets `config.model = janus_tiny.get_config()`)

8x8 image-token grid (64 tokens) over a 64-code VQ; vision=None unless `vision=True` is passed
(`janus_tiny.py:vision=True`).
"""
from ml_collections import ConfigDict

from gotr1_jax import config_lib


def get_config(arg: str | None = None) -> ConfigDict:
  a = config_lib.parse_arg(arg, vision=False, layers=2, hidden=64)
  return ConfigDict(dict(
      family="janus",
      lm=dict(vocab_size=512, hidden_size=a.hidden, intermediate_size=2 * a.hidden, num_layers=a.layers,
              num_heads=4, num_kv_heads=2, rope_theta=10000.0, rms_norm_eps=1e-6, tie_embeddings=False),
      vision=dict(hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, image_size=32, patch_size=8)
      if a.vision else None,
      vq=dict(embed_dim=4, num_embeddings=64, latent_channels=32, base_channels=32,
              channel_multiplier=(1, 1, 2), num_res_blocks=1, num_patches=8),
      gen_aligner_depth=2, gen_head_dim=a.hidden, aligner_depth=2))
