"""ShapesWorld: a small world of coloured shapes where every GoT-R1 reward can be computed exactly.

world (vocabulary, scene types), prompts (categories, grammar, splits), layout (scenes that satisfy
a prompt), render (scene -> image), detect (image -> objects), oracle (scores and exact rewards),
chains (ground-truth chains), tfds_builder (dataset + resumable source), tokenizer, make_assets.
Import the submodules directly; this package imports nothing so that TF-free tools stay light.
"""
