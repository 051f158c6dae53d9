"""A tiny random Qwen2.5-VL (every part present, seconds on a CPU): tests, smoke runs, ShapesWorld's judge.

  python tools/train.py --config configs/<run>.py
  (a run config sets `config.model = qwen2_5_vl_tiny.get_config()`)

Its vocabulary is gotr1_jax.data.qwen_chat.build_qwen_tokenizer's (512 ids, Qwen's special tokens at
0..13, so the placeholder ids below are theirs). Vision: patch 4, merge 2 (8 px per LM token), windows
of 2x2 LM tokens, 4 layers with full attention at 1 and 3. `hidden`, `layers` and `tie` are arguments
(`qwen2_5_vl_tiny.py:hidden=128,layers=4,tie=true`); head_dim is 16, so M-RoPE splits 8 frequencies 2/3/3.
"""
from ml_collections import ConfigDict

from gotr1_jax import config_lib
from gotr1_jax.data.qwen_chat import IMAGE_PAD, SPECIAL_TOKENS, VIDEO_PAD, VISION_END, VISION_START


def get_config(arg: str | None = None) -> ConfigDict:
  a = config_lib.parse_arg(arg, layers=2, hidden=64, tie=False)
  return ConfigDict(dict(
      family="qwen_vl",
      lm=dict(vocab_size=512, hidden_size=a.hidden, intermediate_size=2 * a.hidden, num_layers=a.layers,
              num_heads=a.hidden // 16, num_kv_heads=a.hidden // 32, rope_theta=1000000.0, rms_norm_eps=1e-6,
              qkv_bias=True, tie_embeddings=a.tie, mrope_section=(2, 3, 3)),
      vision=dict(depth=4, hidden_size=32, intermediate_size=48, num_heads=2, patch_size=4, window_size=16,
                  fullatt_block_indexes=(1, 3), out_hidden_size=a.hidden,
                  abs_position_grid=0),
      image_token_id=SPECIAL_TOKENS.index(IMAGE_PAD), video_token_id=SPECIAL_TOKENS.index(VIDEO_PAD),
      vision_start_token_id=SPECIAL_TOKENS.index(VISION_START),
      vision_end_token_id=SPECIAL_TOKENS.index(VISION_END), tokens_per_second=2))
