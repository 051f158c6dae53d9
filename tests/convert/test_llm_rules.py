"""The shared LM rule table: exact torch -> flax -> torch round trip; missing layers are named."""
import numpy as np
import pytest

from gotr1_jax.convert.llm_rules import decoder_lm_rules, lm_config_from_hf
from gotr1_jax.convert.table import flax_to_torch, torch_to_flax
from tests.models.lm_reference import state_dict_numpy, tiny_hf_model


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_round_trip_is_exact(family):
  model = tiny_hf_model(family)
  cfg = lm_config_from_hf(model.config)
  state = state_dict_numpy(model)
  back = flax_to_torch(torch_to_flax(state, decoder_lm_rules(cfg), sizes={"layer": cfg.num_layers}),
                       decoder_lm_rules(cfg))
  assert sorted(back) == sorted(state)
  for k in state:
    np.testing.assert_array_equal(back[k], state[k])


def test_missing_layer_is_reported():
  model = tiny_hf_model("llama")
  cfg = lm_config_from_hf(model.config)
  state = {k: v for k, v in state_dict_numpy(model).items() if "layers.2.mlp.up_proj" not in k}
  with pytest.raises(ValueError, match="up_proj"):
    torch_to_flax(state, decoder_lm_rules(cfg), sizes={"layer": cfg.num_layers})
