"""Config validation names the wrong field; config arguments parse with types."""
import pytest

from gotr1_jax import config_lib
from tests.rl.toy_config import toy_config


def test_config_arguments_are_typed():
  a = config_lib.parse_arg("steps=12,lora=false,mesh=fsdp", steps=1, lora=True, mesh="data")
  assert (a.steps, a.lora, a.mesh) == (12, False, "fsdp")
  with pytest.raises(ValueError, match="Unknown config argument 'stesp'"):
    config_lib.parse_arg("stesp=3", steps=1)


@pytest.mark.parametrize("field,value,message", [
    ("rl.kl", "k4", "config.rl.kl='k4' must be one of"),
    ("rl.group_size", 0, "config.rl.group_size=0 must be a positive integer"),
    ("rl.temperature", -0.5, "config.rl.temperature=-0.5 must be a non-negative number"),
    ("optimizer.lr", -1.0, "config.optimizer.lr=-1.0 must be a non-negative number"),
    ("rl.minibatch_size", 7, "config.rl.minibatch_size=7 must be 0"),
])
def test_bad_values_name_the_field(field, value, message):
  config = toy_config()
  section, key = field.split(".")
  with config.unlocked():
    config[section][key] = value
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
    config_lib.check_config(config)


def test_good_config_passes_and_presets_resolve():
  config_lib.check_config(toy_config())
  assert dict(config_lib.mesh_config("fsdp+tensor")) == {"data": 1, "fsdp": -1, "tensor": 4}
  with pytest.raises(ValueError, match="Unknown mesh preset"):
    config_lib.mesh_config("tp")
