"""Evaluation of policies: ShapesWorld oracle tables (shapes_eval.py), paired intervals of a change
between two evaluations (paired.py) and the judge against the oracle (judge_fidelity.py)."""
