"""gotr1-jax: GoT-R1 GRPO training for Janus-Pro and GoT policies in JAX/Flax.

The package owns the models (Flax linen), compiled samplers, the GRPO loss and trainer, the
GoT-R1 rewards, weight conversion and the embedded ShapesWorld. See README.md for a map.
"""

__version__ = "0.1.0"
