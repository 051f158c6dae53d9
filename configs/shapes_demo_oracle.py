"""configs/shapes_demo.py trained on the oracle's exact rewards instead of the judge's.

  python tools/train.py --config configs/shapes_demo_oracle.py          # runs/shapes_demo_oracle
  python tools/train.py --config configs/shapes_demo_oracle.py:beta=0.1 # the judge run's KL weight

Same policy, sampler, prompts and evaluation as shapes_demo; `reward.kind` differs ("function":
data/shapes_world/oracle.py's exact R_sem, R_spa, R_RI, R_PI, combined the same way), and so does
the KL weight: beta 0.03 instead of 0.1, over the same 160 steps by default. Measured over 40
steps (docs/shapes_findings.md):
- At beta 0.1 the exact rewards leave the policy where it was: KL 0.03, overall 0.137 -> 0.134.
- At 0.02 and 0.03 (seed 0) the attribute scores rose by about 0.04 each and the chains stayed valid
  (0.95, 0.97). With seed 1 the same run went 0.147 -> 0.145: within seed-to-seed noise.
- At 0.01, with 2 or 4 update passes per rollout, the chains broke (valid 0.88, 0.83).
The judge's rewards drift already at 0.03 (overall 0.137 -> 0.126), so the judge run keeps 0.1.
Comparing the two reports shows how much of the exact-reward gain the judge-reward run keeps.
Re-measured on 1,200 val samples with paired 95% intervals (tools/evaluate.py --compare, README),
from the 3-round SFT policy, then (the last sentence) the 4-round one shipped in sessions 20-30: 40
steps change overall by +0.003 [-0.011, +0.018]; `:steps=240` by +0.020 [+0.007, +0.034] (color
+0.042, shape +0.052, valid chains unchanged); with seed=1 by +0.024 [+0.007, +0.041].
Those ran on all six categories (`categories=all`: 160 steps +0.015 [-0.002, +0.031]); on the
claim's four (the default since session 20) 160 steps give +0.030 [+0.012, +0.049] (seed 0) and
+0.024 [+0.006, +0.043] (seed 1), color +0.043 / +0.044, spatial +0.010 / +0.010.
"""
from configs import shapes_demo


def get_config(arg: str | None = None):
  extra = f",{arg}" if arg else ""
  return shapes_demo.get_config(f"reward=function,beta=0.03{extra}")
