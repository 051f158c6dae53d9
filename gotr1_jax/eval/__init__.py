"""Evaluation of policies: ShapesWorld oracle tables (shapes_eval.py)."""
