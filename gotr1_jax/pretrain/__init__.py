"""Pre-training of ShapesWorld's tiny shipped checkpoints: the VQ, the SFT policy and the judge.

Each stage is one module with a pure jitted train step and a short loop (scenes.py feeds them; shipped.py
reads and writes the checkpoints under gotr1_jax/assets/checkpoints). tools/pretrain_shapes.py runs them.
"""
