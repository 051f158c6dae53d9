"""GRPO that teaches the chain its layout: GoT-R1's exact R_spa alone, on spatial prompts, loss on the chain.

  python tools/train.py --config configs/shapes_spatial.py            # runs/shapes_spatial, 120 steps
  python tools/evaluate.py --reliance_batches 0 --run_config configs/shapes_spatial.py \\
      --workdir runs/shapes_spatial --compare runs/eval/sft/summary.json   # 1,200 val samples

configs/shapes_demo_oracle.py (the oracle's exact rewards, beta 0.03) with R_spa as the only reward
(`weighted_sum` with the other weights 0), train prompts of the spatial category only, and the loss
on the chain's tokens only. As neither the loss nor the reward reads an image, the rollouts draw
chains only (`task.sample_images=False`: the same chains, loss and KL, without the image phase and
the VQ decode); the evaluations before and after still draw images.
Measured from the 4-round SFT policy shipped in sessions 20-30 (docs/shapes_findings.md), on 1,200
paired val samples: spatial 0.095 -> 0.185 (change +0.090 [+0.030, +0.160]), numeracy +0.057
[+0.013, +0.105], overall +0.024 [+0.005, +0.043], valid chains unchanged. The chain put the two objects in the asked
relation 97% of the time, up from 54%.
As a first stage (`:steps=60`, its policy written with tools/export_policy.py, then 100 steps of
configs/shapes_demo.py from it; configs/shapes_demo_staged.py runs the pair as one command) spatial
rose +0.065, +0.070, +0.075 and +0.090 with four seeds, each clear of 0, and overall +0.018, +0.030,
+0.037 and +0.024 (docs/shapes_findings.md, "A layout stage, then the demo").
"""
from configs import shapes_demo_oracle


def get_config(arg: str | None = None):
  extra = f",{arg}" if arg else ""
  config = shapes_demo_oracle.get_config(f"steps=120{extra}")
  config.name = "shapes_spatial"
  config.reward.combine = "weighted_sum"
  config.reward.weights.update(dict(r_sem=0.0, r_spa=1.0, r_ri=0.0, r_pi=0.0))
  config.task.train_categories = ("spatial",)
  config.task.loss_tokens = "chain"
  config.task.sample_images = False  # nothing here reads an image: chains only (evaluations still draw them)
  return config
