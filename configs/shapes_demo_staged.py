"""What `make demo` runs: a layout stage (configs/shapes_spatial.py), then configs/shapes_demo.py from its policy.

  python tools/train.py --config configs/shapes_demo_staged.py          # runs/shapes_demo_staged
  python tools/train.py --config configs/shapes_demo_staged.py:layout_steps=60,steps=100,seed=1
  python tools/evaluate.py --reliance_batches 0 --run_config configs/shapes_demo_staged.py \\
      --workdir runs/shapes_demo_staged --compare runs/eval/sft/summary.json   # 1,200 val samples

Stage `layout` (runs/shapes_demo_staged/layout/): `layout_steps` of GRPO on GoT-R1's exact R_spa
alone, the oracle's rule over the chain's boxes, on spatial prompts, with the loss on the chain
(configs/shapes_spatial.py). Stage `demo` (runs/shapes_demo_staged/demo/): `steps` of the main job,
judged by the shipped judge on GoT-R1's four rewards as their product (configs/shapes_demo.py),
from the layout stage's policy (LoRA merged, a fresh LoRA and optimizer, the KL to that policy).
gotr1_jax/rl/stages.py runs them; re-running resumes. The run ends with report.md: the SFT start
against the end of both, and each stage's change. Any stage field can be overridden:
`--config.stages.demo.rl.beta=0.05`.

Why: within GoT-R1's product a wrong layout keeps 5/6 of its reward and the tiny judge cannot read
layouts, so configs/shapes_demo.py alone does not raise 2D-spatial clearly; a layout stage first does
(README, "Does GRPO raise the scores?"; docs/shapes_findings.md, "A layout stage, then the demo").
From the 8-round SFT policy shipped since session 35 (1,200 paired val samples, 95% intervals) the
pair raised spatial by +0.180 [+0.110, +0.255], +0.160 [+0.075, +0.250] and +0.155 [+0.080, +0.230]
(seeds 0-2), texture by +0.034, +0.042 and +0.044, overall by +0.052, +0.050 and +0.048 (each clear
of 0), shape by +0.065, +0.057 (clear) and +0.039, color by -0.007, +0.014 and +0.032; `make demo` in
a fresh clone took 17 min 40 s with set-up on session 35's 2-core CPU. Since session 39 the sampler's
KV cache grows in blocks, which rounds otherwise and drew seeds 0 and 2 anew (seed 1 the same to the
last digit): spatial +0.165 and +0.180, overall +0.045 and +0.039 (clear), shape +0.016 and +0.037
(the second clear), texture +0.026 and +0.025, color +0.010 and +0.031 (not clear).
From the 7-round SFT policy shipped in sessions 33-34 (the same intervals) the pair
raised spatial by +0.205 [+0.135, +0.275], +0.205 [+0.125, +0.285], +0.240 [+0.170, +0.310] and +0.260
[+0.190, +0.335] (seeds 0-3), overall by +0.045, +0.073, +0.079 and +0.087, color by -0.026, +0.051,
+0.063 and +0.057, shape by -0.026, +0.072, +0.066 and +0.073, texture by +0.046, +0.032, +0.070 and
+0.042 (clear of 0 but for seed 0's color and shape and seed 1's texture); seeds 1 and 2 took 11
min 44 s and 11 min 35 s without set-up on session 34's 2-core CPU. From the 5-round policy shipped
in sessions 31-32 the pair raised spatial by +0.060 [+0.000, +0.120], +0.080 [+0.010, +0.150],
+0.130 [+0.060, +0.215] and +0.135 [+0.070, +0.210] (seeds 0-3), overall by +0.005, +0.015, +0.028
and +0.023 (the last two clear), no attribute category clearly; the rest of this paragraph is from
the 4-round policy shipped before.
Run as three commands with tools/export_policy.py between them, 60 + 100 steps raised spatial by
+0.065, +0.070 and +0.075 (seeds 0, 1, 2, each clear of 0 on 1,200 paired val samples) and overall
by +0.018, +0.030 and +0.037; this config reproduced seed 2 bit for bit, and with seed 3 raised
spatial by +0.090 [+0.030, +0.160] and overall by +0.024 [+0.007, +0.041] in 19 min 37 s on a 2-core
CPU. The attribute categories moved within their noise but once in twelve (color, seed 2). Where
GoT-R1 asks its judge for R_spa, the layout stage uses the rule: a choice made here. Since then the
layout stage draws chains only (configs/shapes_spatial.py, task.sample_images=False): its steps 1.95 s
instead of 4.26 s with the same rewards; seed 3 again: spatial +0.075 [+0.015, +0.140], overall
+0.018 [+0.001, +0.034].
"""
from ml_collections import ConfigDict

from configs import shapes_demo, shapes_spatial
from gotr1_jax import config_lib


def get_config(arg: str | None = None):
  a = config_lib.parse_arg(arg, layout_steps=60, steps=100, seed=0)
  return ConfigDict(dict(
      name="shapes_demo_staged",
      stage_order=("layout", "demo"),
      stages=dict(layout=shapes_spatial.get_config(f"steps={a.layout_steps},seed={a.seed}"),
                  demo=shapes_demo.get_config(f"steps={a.steps},seed={a.seed}"))))
