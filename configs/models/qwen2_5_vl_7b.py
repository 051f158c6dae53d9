"""Qwen2.5-VL-7B-Instruct (GoT-R1's judge): Qwen2 hidden 3584, 28 layers, 28 heads / 4 KV heads,
MLP 18944, vocab 152064, untied head; the shared 32-layer vision tower.

  python tools/convert.py --family qwen_vl --to flax --src Qwen2.5-VL-7B-Instruct --dst ckpt/judge --verify
  (a run config sets `config.model = qwen2_5_vl_7b.get_config()`, `from configs.models import qwen2_5_vl_7b`)

Weights: gotr1_jax.convert.qwen_vl.load_qwen_vl on a transformers checkpoint or our Flax directory.
"""
from ml_collections import ConfigDict

from configs.models import qwen2_5_vl


def get_config(arg: str | None = None) -> ConfigDict:
  del arg
  return qwen2_5_vl(vocab=152064, hidden=3584, layers=28, heads=28, kv_heads=4, mlp=18944, tie=False)
