"""PyTorch/HF <-> Flax weight conversion: one pattern->transform table per family."""
