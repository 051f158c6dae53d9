"""Compiled samplers: autoregressive decoding with a preallocated KV cache (and CFG)."""
