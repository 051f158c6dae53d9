"""Shared pieces of `configs/*.py` and the one validator of a run config.

Owns the mesh presets (`data`, `fsdp`, `fsdp+tensor`), the logical-axis rule table, the GRPO /
optimizer / LoRA / checkpoint defaults (GOT_R1_FACTS.md §5; unpublished values say so), parsing of
the `--config file.py:key=value,...` argument, and `check_config`, which turns a wrong field into
one clear error naming it; `parse_flags` does the same for a `--config.<field>` override on the
command line of the tools, and `run_tool` for an error raised while a tool runs. Config files say
*what*; they are small functions of these pieces.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Collection, Sequence

from ml_collections import ConfigDict, config_dict

MESH_PRESETS = {
    "data": {"data": -1, "fsdp": 1, "tensor": 1},
    "fsdp": {"data": 1, "fsdp": -1, "tensor": 1},
    "fsdp+tensor": {"data": 1, "fsdp": -1, "tensor": 4},
}

# Logical axis -> mesh axes (MaxText style). A mesh axis already used by an earlier dimension of
# the same array is skipped, so activations [batch, length, embed] put batch on data+fsdp and
# leave embed replicated while params [embed, mlp] shard embed over fsdp.
LOGICAL_AXIS_RULES = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("layers", None),
    ("norm", None),
    ("lora_rank", None),
)


def parse_arg(arg: str | None, **defaults: Any) -> ConfigDict:
  """Parses big_vision-style 'key=value,key=value' config arguments over typed defaults."""
  out = ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    if "=" not in item:
      raise ValueError(f"Config argument {item!r} must look like key=value (known keys: {sorted(defaults)}).")
    key, value = item.split("=", 1)
    if key not in defaults:
      raise ValueError(f"Unknown config argument {key!r}; known: {sorted(defaults)}.")
    kind = type(defaults[key])
    out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
  return out


def mesh_config(preset: str) -> ConfigDict:
  if preset not in MESH_PRESETS:
    raise ValueError(f"Unknown mesh preset {preset!r}; choose one of {sorted(MESH_PRESETS)}.")
  return ConfigDict(MESH_PRESETS[preset])


def rl_defaults() -> ConfigDict:
  """GRPO settings. Published by GoT-R1: group 16, 8 prompts, temperature 1.0, 1000 steps.
  Not published (common defaults, chosen here): epsilon 0.2, beta 0.04, k3 KL, token-mean.
  image_beta (unset: beta everywhere) gives a Janus policy's image codes their own KL weight, beta
  then weighing the chain's tokens only."""
  return ConfigDict(dict(
      steps=1000, prompts_per_step=8, group_size=16, num_iterations=1, minibatch_size=0,
      epsilon=0.2, epsilon_high=None, beta=0.04, image_beta=config_dict.placeholder(float), kl="k3",
      aggregation="token-mean", advantage="grpo", temperature=1.0))


def optimizer_defaults() -> ConfigDict:
  """GoT-R1: lr 1e-5 cosine. AdamW betas/eps/wd follow GoT's training (0.9, 0.98, 1e-6, 0.05)."""
  return ConfigDict(dict(name="adamw", lr=1e-5, warmup_steps=0, final_lr_ratio=0.0, b1=0.9,
                         b2=0.98, eps=1e-6, weight_decay=0.05, max_grad_norm=1.0))


def lora_defaults() -> ConfigDict:
  """GoT-R1: LoRA rank 32, alpha 32 on q/k/v/o/gate/up/down."""
  return ConfigDict(dict(enabled=True, rank=32, alpha=32.0,
                         targets=(r"attn/(q|k|v|o)_proj", r"mlp/(gate|up|down)_proj")))


def checkpoint_defaults() -> ConfigDict:
  return ConfigDict(dict(every=50, keep=3, async_save=True))


def base_config() -> ConfigDict:
  """Everything but the task and model, with the paper's defaults."""
  return ConfigDict(dict(
      seed=0, mesh=mesh_config("data"), logical_axis_rules=LOGICAL_AXIS_RULES, rl=rl_defaults(),
      optimizer=optimizer_defaults(), lora=lora_defaults(), checkpoint=checkpoint_defaults()))


_CHOICES = {
    "rl.kl": ("k1", "k2", "k3"),
    "rl.aggregation": ("token-mean", "sequence-mean-token-mean", "token-sum-norm"),
    "rl.advantage": ("grpo", "drgrpo", "rloo"),
    "optimizer.name": ("adamw",),
}
_POSITIVE_INTS = ("rl.steps", "rl.prompts_per_step", "rl.group_size", "rl.num_iterations",
                  "checkpoint.keep")
_NON_NEGATIVE_NUMBERS = ("rl.epsilon", "rl.beta", "rl.temperature", "optimizer.lr",
                         "optimizer.weight_decay", "optimizer.max_grad_norm")
_OPTIONAL_NON_NEGATIVE_NUMBERS = ("rl.image_beta",)  # None (unset) or a number


_REQUIRED = object()


def run_dir(config: ConfigDict, workdir: str | None = None) -> str:
  """A run's directory: `workdir` when given (the tools' --workdir), else runs/<config.name>."""
  return workdir or os.path.join("runs", config.get("name", "run"))


def get_field(config: ConfigDict, dotted: str, default: Any = _REQUIRED) -> Any:
  """config's field at a dotted path ("rl.beta"); `default` if a part of the path is missing, or,
  without a default, a ValueError naming the field."""
  node = config
  for part in dotted.split("."):
    if node is None or part not in node:
      if default is _REQUIRED:
        raise ValueError(f"Config field {dotted!r} is missing; start from gotr1_jax.config_lib.base_config().")
      return default
    node = node[part]
  return node


def check_config(config: ConfigDict) -> None:
  """Raises one ValueError naming the first wrong field and how to fix it."""
  for field, allowed in _CHOICES.items():
    if get_field(config, field) not in allowed:
      raise ValueError(f"config.{field}={get_field(config, field)!r} must be one of {allowed}.")
  for field in _POSITIVE_INTS:
    v = get_field(config, field)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"config.{field}={v!r} must be a positive integer.")
  for field in _NON_NEGATIVE_NUMBERS + _OPTIONAL_NON_NEGATIVE_NUMBERS:
    optional = field in _OPTIONAL_NON_NEGATIVE_NUMBERS
    v = get_field(config, field, None) if optional else get_field(config, field)
    if v is None and optional:
      continue
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
      raise ValueError(f"config.{field}={v!r} must be a non-negative number.")
  rows = config.rl.prompts_per_step * config.rl.group_size
  mb = config.rl.minibatch_size
  if not isinstance(mb, int) or mb < 0 or (mb and rows % mb):
    raise ValueError(f"config.rl.minibatch_size={mb!r} must be 0 (whole batch) or divide "
                     f"prompts_per_step * group_size = {rows}.")
  if config.rl.advantage == "rloo" and config.rl.group_size < 2:
    raise ValueError("config.rl.group_size must be >= 2 for rloo advantages.")


def unknown_override_message(argv: Sequence[str], error: BaseException, tool_flags: Collection[str],
                             prefix: str | None = None, default: str | None = None) -> str:
  """The message for an override of a field the config does not have. ml_collections raises a bare
  AttributeError(KeyError("'name'\nDid you mean ...")) while parsing `--config.a.name=...`; this
  names the argument, the field, its hint and, when `name` is one of the tool's own flags
  (`--config.workdir` for `--workdir`), says so; with `default`, that the override was read
  against that default config file. `prefix` is the config flag the override belongs to; None
  takes it from the first `--<flag>.<...>` argument naming the field (`--run_config.rl.stepz` in
  tools/evaluate.py), else "config"."""
  inner: Any = error
  while isinstance(inner, BaseException) and inner.args:
    inner = inner.args[0]
  lines = str(inner).split("\n")
  key = lines[0].strip().strip("'\"")
  hint = " ".join(x.strip() for x in lines[1:] if x.strip())
  dotted = [a[2:].split("=", 1)[0] for a in argv[1:] if a.startswith("--") and "." in a.split("=", 1)[0]]
  overrides = [o for o in dotted if prefix is None or o.split(".", 1)[0] == prefix]
  named = next((o for o in overrides if key in o.split(".")[1:]), None)
  prefix = prefix or (named.split(".", 1)[0] if named else "config")
  named = named or f"{prefix}.{key}"
  out = f"--{named}: the config has no field {key!r}"
  if hint:
    out += f" ({hint})"
  if key in tool_flags:
    out += f"; --{key} is this tool's own flag, not a config field: pass --{key}=... instead"
  out += ". An override must name a field the config file's get_config() defines"
  if default is not None:
    out += f" (read against the default --{prefix} {default}; pass --{prefix} to choose another)"
  return out + "."


def define_config_file(name: str, default: str | None, help_string: str, flag_values: Any = None) -> Any:
  """`config_flags.DEFINE_config_file` for the tools. ml_collections parses a *default* config file,
  with the command line's `--<name>.<field>` overrides, when the flag is defined, at import, before
  `parse_flags` can see anything; an override of a field the default does not have is reported here
  as `parse_flags` reports it, and says which config it was read against."""
  from absl import flags  # the tools' dependency, not the library's
  from ml_collections import config_flags
  flag_values = flags.FLAGS if flag_values is None else flag_values
  try:
    return config_flags.DEFINE_config_file(name, default, help_string, flag_values=flag_values)
  except (AttributeError, KeyError) as e:
    message = unknown_override_message(sys.argv, e, set(flag_values), prefix=name, default=default)
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n")
    sys.exit(1)


def parse_flags(argv: Sequence[str]) -> list[str]:
  """`app.run(main, flags_parser=config_lib.parse_flags)`: absl's parsing, with an override of an
  unknown config field reported like any other flag error (one line, exit status 1) instead of a
  traceback ending in a bare AttributeError."""
  from absl import app, flags  # the tools' dependency, not the library's
  try:
    return app.parse_flags_with_usage(list(argv))
  except (AttributeError, KeyError) as e:
    sys.stderr.write(f"FATAL Flags parsing error: {unknown_override_message(argv, e, set(flags.FLAGS))}\n")
    sys.exit(1)


# What the library raises for input a user can fix (a path, a config value, a file's contents); each
# message names the fix. A tool run by run_tool ends on such an error with its message alone.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
TRACEBACK_ENV = "GOTR1_TRACEBACK"


def run_tool(main: Any, argv: Sequence[str] | None = None) -> None:
  """`app.run(main)` for the tools, flags parsed by parse_flags: an error of USER_ERRORS raised while
  the tool runs ends it with its message on one line (`Error: ...`, exit status 1), not a traceback
  in which the message is the last line; `GOTR1_TRACEBACK=1` lets it propagate, traceback and all.
  Any other exception keeps its traceback. jax's INFO line about the TPU backend it did not find,
  printed by every run on a CPU or GPU host, is held back (its warnings are not). The tool compiles
  with the persistent compilation cache on (compile_cache.py)."""
  import logging

  from absl import app  # the tools' dependency, not the library's

  from gotr1_jax import compile_cache

  def guarded(args):
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    compile_cache.enable()
    try:
      return main(args)
    except USER_ERRORS as e:
      if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        raise
      sys.stderr.write(f"Error: {e}\n({TRACEBACK_ENV}=1 shows where it was raised.)\n")
      sys.exit(1)

  app.run(guarded, argv=None if argv is None else list(argv), flags_parser=parse_flags)
