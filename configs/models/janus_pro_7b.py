"""Janus-Pro-7B (GoT-R1-7B's base): LLaMA hidden 4096, 30 layers, 32 heads, MLP 11008.

  python tools/train.py --config configs/<run>.py   (the run config sets
  `config.model = janus_pro_7b.get_config()`, `from configs.models import janus_pro_7b`)

Weights: gotr1_jax.convert.janus.load_janus on a DeepSeek or transformers checkpoint directory.
"""
from ml_collections import ConfigDict

from configs.models import janus_pro


def get_config(arg: str | None = None) -> ConfigDict:
  del arg
  return janus_pro(hidden=4096, layers=30, heads=32, mlp=11008)
