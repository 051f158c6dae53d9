"""Qwen2.5-VL-3B-Instruct (GoT's MLLM policy): Qwen2 hidden 2048, 36 layers, 16 heads / 2 KV heads,
MLP 11008, vocab 151936, tied embeddings; the shared 32-layer vision tower.

  python tools/convert.py --family qwen_vl --to flax --src Qwen2.5-VL-3B-Instruct --dst ckpt/qwen3b --verify
  (a run config sets `config.model = qwen2_5_vl_3b.get_config()`, `from configs.models import qwen2_5_vl_3b`)

Weights: gotr1_jax.convert.qwen_vl.load_qwen_vl on a transformers checkpoint or our Flax directory.
"""
from ml_collections import ConfigDict

from configs.models import qwen2_5_vl


def get_config(arg: str | None = None) -> ConfigDict:
  del arg
  return qwen2_5_vl(vocab=151936, hidden=2048, layers=36, heads=16, kv_heads=2, mlp=11008, tie=True)
