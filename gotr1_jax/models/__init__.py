"""Flax linen modules, one file per family; no I/O, no mesh, no optimizer inside."""
