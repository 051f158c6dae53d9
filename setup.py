"""gotr1-jax: GoT-R1 (reasoning-then-drawing GRPO) training in JAX/Flax.

Versions are pinned so that a fresh clone installs the exact stack the tests were run with
(Python 3.11; jax 0.10.2 is the newest release for 3.11).
"""
from setuptools import find_namespace_packages, setup

INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "ml-collections==1.1.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "transformers==5.23.0",
    "tokenizers==0.23.3",
    "jinja2==3.1.6",  # transformers' chat templates (the judge's prompts); torch brought it before
    "safetensors==0.8.0",
    "tensorflow-datasets==4.9.10",
    "array-record==0.8.6",
    "pillow==13.0.0",
    "tqdm==4.70.1",
    "tensorboardX==2.6.5",
    "absl-py==2.5.1",
]

EXTRAS_REQUIRE = {
    # torch is the reference for parity tests and the conversion CLI; the CPU build.
    "dev": [
        "torch==2.13.0",
        "diffusers==0.42.1",
        "pytest==9.2.0",
        "pytest-xdist==3.8.0",
    ],
}

setup(
    name="gotr1_jax",
    version="0.1.0",
    description="GoT-R1 GRPO training (reasoning chain + image) in JAX/Flax",
    python_requires=">=3.11,<3.12",
    # Namespace discovery lists the asset directories (no __init__.py) as packages too, so setuptools
    # ships them as package data without warning that they "would be ignored".
    packages=find_namespace_packages(include=["gotr1_jax", "gotr1_jax.*"]),
    include_package_data=True,
    package_data={"gotr1_jax": ["assets/**/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
