"""Does the GRPO path learn at all? The main job with a dense, easy reward instead of GoT-R1's.

  python tools/train.py --config configs/shapes_sanity.py               # runs/shapes_sanity, ~6 min
  python tools/train.py --config configs/shapes_sanity.py --config.task.sanity_color=blue

configs/shapes_demo_oracle.py with one change: the reward is the share of image pixels the oracle
reads as `color` (rl/shapes_world.py: color_share_reward_fn), which every sample earns some of.
Same shipped policy, sampler (CFG, temperature 1), GRPO loss over chain and image tokens, LoRA,
optimizer and learning rate. If this curve rises and the GoT-R1 run's does not, the machinery
works and the GoT-R1 reward carries too little signal for the policy; if it stays flat, look at
the path itself. The oracle's evaluation is cut to one val prompt per category (it does not
measure this reward).
"""
from configs import shapes_demo


def get_config(arg: str | None = None):
  extra = f",{arg}" if arg else ""  # shapes_demo's arguments, e.g. steps=60,lr=1e-3
  config = shapes_demo.get_config(f"reward=function,steps=30,categories=all{extra}")  # as measured
  config.name = "shapes_sanity"
  config.task.reward_fn = "color_share"
  config.task.sanity_color = "red"
  config.task.eval_prompts_per_category = 1
  return config
