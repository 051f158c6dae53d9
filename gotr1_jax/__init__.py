"""gotr1-jax: GoT-R1 GRPO training for Janus-Pro and GoT policies in JAX/Flax.

The package owns the models (Flax linen), compiled samplers, the GRPO loss and trainer, the
GoT-R1 rewards, weight conversion and the embedded ShapesWorld. See README.md for a map.
"""

import os

__version__ = "0.1.0"

# torch is optional at run time (the parity reference and the conversion CLI need it, nothing else
# does), and transformers advises on every import that it is missing: noise in each tool's output.
# Set before any module here imports transformers; a user's own setting wins (set but empty, it
# lets transformers advise again).
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
