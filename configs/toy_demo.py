"""The foundation's toy GRPO job: a tiny random LM learns to emit tokens in [3, 11).

  python tools/train.py --config configs/toy_demo.py --workdir runs/toy_demo
  python tools/train.py --config configs/toy_demo.py:mesh=fsdp,steps=10

A random policy scores about 8/64 of its tokens in the target set; GRPO raises it within a few
dozen steps on a 2-core CPU. This is what `make demo` runs until the ShapesWorld job exists.
"""
from gotr1_jax import config_lib


def get_config(arg: str | None = None):
  a = config_lib.parse_arg(arg, mesh="data", steps=60, lora=True, group_size=8)
  config = config_lib.base_config()
  config.name = "toy_demo"
  config.mesh = config_lib.mesh_config(a.mesh)
  config.task = dict(name="toy", first_token=3, target_lo=3, target_hi=11, eos_id=2, pad_id=0,
                     min_prompt_len=2, max_prompt_len=6, prompt_buckets=(8,), max_new_tokens=8)
  config.model = dict(lm=dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_layers=2,
                              num_heads=4, num_kv_heads=2, rope_theta=10000.0))
  config.rl.steps = a.steps
  config.rl.prompts_per_step = 8
  config.rl.group_size = a.group_size
  config.rl.beta = 0.02
  config.optimizer.lr = 3e-3
  config.optimizer.weight_decay = 0.0
  config.lora.enabled = a.lora
  config.lora.rank = 8
  # A randomly initialised LM has tiny, norm-bounded logits; adapting only the trunk cannot move
  # them far, so the toy adapts the LM head too (a pretrained policy does not need this).
  config.lora.targets = tuple(config.lora.targets) + (r"lm_head",)
  config.lora.alpha = 16.0
  config.checkpoint.every = 20
  return config
