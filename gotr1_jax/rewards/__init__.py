"""GoT-R1 rewards: judge prompts, answer parsing, layout canvas, IoU, combination."""
