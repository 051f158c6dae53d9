"""Tiny pre-training configs for the tests: the shipped config's layout at toy sizes (64 px images,
an 8 x 8 token grid over a 32-code VQ, a 2-layer policy)."""
from __future__ import annotations

from ml_collections import ConfigDict

from configs.shapes_pretrain import get_config


def tiny_config(steps: int = 6) -> ConfigDict:
  config = get_config(f"scale={steps / 1000}")
  vq = config.vq
  vq.model.update(embed_dim=4, num_embeddings=32, latent_channels=16, base_channels=8,
                  channel_multiplier=(1, 1, 1, 2), norm_groups=4, num_patches=8)
  vq.update(steps=steps, batch_size=4, log_every=2, eval_images=4, grid_images=2)
  vq.optimizer.update(lr=3e-3, warmup_steps=1)
  p = config.policy
  p.model.lm.update(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
  p.model.gen_head_dim = 32
  p.update(steps=steps, batch_size=4, log_every=2, cfg_drop_prob=0.25)
  p.optimizer.update(lr=1e-2, warmup_steps=1)
  p.eval.update(prompts_per_category=1, num_samples=1, greedy=False, batch_prompts=6, grid_prompts=6)
  return config
