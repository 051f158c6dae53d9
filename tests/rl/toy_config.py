"""A small toy-task config shared by trainer, parallel and checkpoint tests."""
import importlib.util
import os

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def toy_config(arg: str = ""):
  spec = importlib.util.spec_from_file_location("toy_demo", os.path.join(_ROOT, "configs", "toy_demo.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  config.checkpoint.async_save = False
  return config
