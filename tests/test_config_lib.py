"""Config validation names the wrong field; config arguments parse with types; a tool's unknown
`--config.<field>` override is one line naming it."""
import os
import subprocess
import sys

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
    ("rl.image_beta", -0.1, "config.rl.image_beta=-0.1 must be a non-negative number"),
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


def test_run_dir_is_the_workdir_given_else_runs_name():
  config = toy_config()
  assert config_lib.run_dir(config) == os.path.join("runs", config.name)
  assert config_lib.run_dir(config, "/tmp/elsewhere") == "/tmp/elsewhere"


def _attribute_error(config, dotted):
  node = config
  try:
    for part in dotted.split("."):
      node = getattr(node, part)
  except AttributeError as e:  # what ml_collections raises while applying `--config.<dotted>=...`
    return e
  raise AssertionError(f"{dotted} exists")


def test_unknown_override_names_the_argument_the_field_and_the_tools_own_flag():
  config = toy_config()
  argv = ["train.py", "--config=configs/toy_demo.py", "--config.workdir=/tmp/x"]
  message = config_lib.unknown_override_message(argv, _attribute_error(config, "workdir"), {"config", "workdir"})
  assert message.startswith("--config.workdir: the config has no field 'workdir'; --workdir is this tool's own flag")
  argv = ["train.py", "--config=configs/toy_demo.py", "--config.rl.beta=0.1", "--config.rl.stepz=3"]
  message = config_lib.unknown_override_message(argv, _attribute_error(config, "rl.stepz"), {"config", "workdir"})
  assert message.startswith("--config.rl.stepz: the config has no field 'stepz' (Did you mean \"steps\"")
  assert "own flag" not in message
  # tools/evaluate.py's second config: the message names the flag the override was given to.
  argv = ["evaluate.py", "--run_config=configs/toy_demo.py", "--run_config.rl.stepz=3"]
  message = config_lib.unknown_override_message(argv, _attribute_error(config, "rl.stepz"), {"run_config"})
  assert message.startswith("--run_config.rl.stepz: the config has no field 'stepz'")


def test_a_tool_reports_an_unknown_override_in_one_line(tmp_path):
  # The wiring: every tool but the benchmarks runs its main through config_lib.run_tool (parse_flags).
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  tools = [f for f in sorted(os.listdir(os.path.join(root, "tools"))) if f.endswith(".py")]
  with_config = [f for f in tools if "define_config_file" in open(os.path.join(root, "tools", f)).read()]
  assert len(with_config) >= 9
  for f in tools:
    text = open(os.path.join(root, "tools", f)).read()
    assert "config_flags.DEFINE_config_file" not in text, f  # config_lib.define_config_file instead
    if not f.startswith("bench_"):
      assert "config_lib.run_tool(main)" in text and "app.run(" not in text, f
  out = subprocess.run([sys.executable, os.path.join(root, "tools", "train.py"), "--config",
                        os.path.join(root, "configs", "toy_demo.py"), f"--config.workdir={tmp_path}"],
                       capture_output=True, text=True, cwd=root, timeout=120)
  assert out.returncode == 1
  assert "Traceback" not in out.stderr
  assert "--config.workdir: the config has no field 'workdir'; --workdir is this tool's own flag" in out.stderr


def test_a_user_error_while_a_tool_runs_is_one_message(tmp_path):
  # check_config's ValueError, raised once the run starts: its message, no traceback.
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, os.path.join(root, "tools", "train.py"), "--config",
                        os.path.join(root, "configs", "toy_demo.py"), "--config.rl.kl=k4", f"--workdir={tmp_path}"],
                       capture_output=True, text=True, cwd=root, timeout=120)
  assert out.returncode == 1
  assert "Traceback" not in out.stderr
  assert "Error: config.rl.kl='k4' must be one of" in out.stderr
  assert f"({config_lib.TRACEBACK_ENV}=1 shows where it was raised.)" in out.stderr


def test_run_tool_keeps_the_traceback_when_asked_and_for_other_errors(monkeypatch, capsys):
  def fails_with(error):
    def main(argv):
      del argv
      raise error
    return main

  with pytest.raises(SystemExit) as exit_info:
    config_lib.run_tool(fails_with(FileNotFoundError("No checkpoint at x; pass --checkpoint.")), argv=["tool"])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("Error: No checkpoint at x; pass --checkpoint.\n") and "Traceback" not in err
  with pytest.raises(RuntimeError, match="a bug"):  # not a user's error: propagates as it is
    config_lib.run_tool(fails_with(RuntimeError("a bug")), argv=["tool"])
  monkeypatch.setenv(config_lib.TRACEBACK_ENV, "1")
  with pytest.raises(FileNotFoundError, match="pass --checkpoint"):
    config_lib.run_tool(fails_with(FileNotFoundError("No checkpoint at x; pass --checkpoint.")), argv=["tool"])


def test_an_unknown_override_of_a_default_config_is_one_line_too(tmp_path, monkeypatch, capsys):
  # ml_collections reads a default config file, overrides included, when the flag is defined (at a
  # tool's import, before parse_flags): tools/evaluate.py --config.reward.combine=... (its default
  # is the pretraining config, which has no `reward`) ended in a KeyError traceback.
  from absl import flags
  default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "toy_demo.py")
  monkeypatch.setattr(sys, "argv", ["evaluate.py", "--config.reward.combine=weighted_sum"])
  with pytest.raises(SystemExit) as exit_info:
    config_lib.define_config_file("config", default, "help", flag_values=flags.FlagValues())
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("FATAL Flags parsing error: --config.reward.combine: the config has no field 'reward'")
  assert f"(read against the default --config {default}; pass --config to choose another)." in err
  # Known fields of the default still parse.
  monkeypatch.setattr(sys, "argv", ["evaluate.py", "--config.rl.beta=0.5"])
  values = flags.FlagValues()
  config = config_lib.define_config_file("config", default, "help", flag_values=values)
  values(sys.argv)
  assert config.value.rl.beta == 0.5
