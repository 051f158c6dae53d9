"""GoT-R1 text-to-image generation with a Janus checkpoint (infer.py's settings: chain <= 600 tokens,
CFG 5, temperature 1 for text and image tokens).

  python tools/generate.py --config configs/generate_janus.py --checkpoint ckpt/GoT-R1-1B-flax \
      --prompt "a red apple left of a green cup" --num-samples 4 --out samples/
  python tools/generate.py --config configs/generate_janus.py:greedy=true,cfg_weight=3,dtype=bfloat16 ...

`dtype` is the compute dtype of the LM (bfloat16 on accelerators); `param_dtype` casts the stored
weights on load ('' keeps them as stored).
"""
from ml_collections import ConfigDict

from gotr1_jax import config_lib


def get_config(arg: str | None = None) -> ConfigDict:
  a = config_lib.parse_arg(arg, cfg_weight=5.0, temperature=1.0, greedy=False, max_chain_tokens=600,
                           pad_token="", dtype="float32", param_dtype="", seed=0)
  return ConfigDict(dict(
      seed=a.seed, dtype=a.dtype, param_dtype=a.param_dtype,
      generation=dict(
          max_chain_tokens=a.max_chain_tokens, cfg_weight=a.cfg_weight, text_temperature=a.temperature,
          image_temperature=a.temperature, greedy_text=a.greedy, greedy_image=a.greedy,
          prompt_buckets=(64, 128, 256), image_prompt_buckets=(128, 256, 512, 896), decode_batch_size=8,
          pad_token=a.pad_token)))
