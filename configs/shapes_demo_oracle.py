"""configs/shapes_demo.py trained on the oracle's exact rewards instead of the judge's.

  python tools/train.py --config configs/shapes_demo_oracle.py          # runs/shapes_demo_oracle

Same policy, sampler, settings, prompts and evaluation as shapes_demo; only `reward.kind` differs
("function": data/shapes_world/oracle.py's exact R_sem, R_spa, R_RI, R_PI, combined the same way).
Comparing the two reports shows how much of the exact-reward gain the judge-reward run keeps.
"""
from configs import shapes_demo


def get_config(arg: str | None = None):
  extra = f",{arg}" if arg else ""
  return shapes_demo.get_config(f"reward=function{extra}")
