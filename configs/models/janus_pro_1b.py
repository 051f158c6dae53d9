"""Janus-Pro-1B (GoT-R1-1B's base): LLaMA hidden 2048, 24 layers, 16 heads, MLP 5632.

  python tools/train.py --config configs/<run>.py   (the run config sets
  `config.model = janus_pro_1b.get_config()`, `from configs.models import janus_pro_1b`)

Weights: gotr1_jax.convert.janus.load_janus on a DeepSeek or transformers checkpoint directory.
"""
from ml_collections import ConfigDict

from configs.models import janus_pro


def get_config(arg: str | None = None) -> ConfigDict:
  del arg
  return janus_pro(hidden=2048, layers=24, heads=16, mlp=5632)
