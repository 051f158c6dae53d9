"""The shipped ShapesWorld assets are exactly what make_assets builds."""
from __future__ import annotations

from gotr1_jax.data.shapes_world import make_assets


def test_shipped_assets_are_up_to_date():
  assert make_assets.stale_assets() == []
