"""Janus VQ-16 tokenizer weight tables: transformers' and DeepSeek's layouts <-> models/vq.py.

Owns one description of the VQ's parameters, rendered in either layout's names. It does not own the
conversion machinery (convert/table.py) nor the rest of Janus (LM, gen_embed/aligner/head, SigLIP).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gotr1_jax.convert.table import CONV2D, IDENTITY, Rule

# DeepSeek's VectorQuantizer registers a 65536-entry usage counter (training statistics only).
DEEPSEEK_CODEBOOK_USED = 65536


@dataclasses.dataclass(frozen=True)
class VQLayout:
  """How one checkpoint layout names the VQ's modules (see transformers'
  convert_janus_weights_to_hf.py: conv_blocks -> down/up, res -> block, mid.{0,1,2} -> ...)."""

  prefix: str  # before every key, e.g. 'model.vqmodel.'
  down: str  # encoder levels
  up: str  # decoder levels
  res: str  # res blocks inside a level
  mid: tuple[str, str, str]  # mid res block, mid attention, mid res block
  codebook_used: bool = False  # the checkpoint carries quantize.codebook_used

  def with_prefix(self, prefix: str) -> VQLayout:
    return dataclasses.replace(self, prefix=prefix)


# transformers' JanusForConditionalGeneration; `.with_prefix('')` for a standalone JanusVQVAE.
TRANSFORMERS = VQLayout("model.vqmodel.", "down", "up", "block", ("block_1", "attn_1", "block_2"))
# DeepSeek's original MultiModalityCausalLM (Janus-Pro, GoT-R1 releases): `gen_vision_model.*`.
DEEPSEEK = VQLayout("gen_vision_model.", "conv_blocks", "conv_blocks", "res", ("0", "1", "2"),
                    codebook_used=True)


def vq_rules(layout: VQLayout) -> tuple[Rule, ...]:
  """Every VQ param of models/vq.py::VQModel in `layout`'s names. Templates use `{level}` and
  `{block}` placeholders (no stacking), so one table serves every VQConfig; completeness against
  a given config is checked with table.check_structure."""
  p = layout.prefix

  def conv(torch_name: str, flax_path: str, optional: bool = False) -> list[Rule]:
    return [Rule(f"{p}{torch_name}.weight", f"{flax_path}/kernel", CONV2D, optional=optional),
            Rule(f"{p}{torch_name}.bias", f"{flax_path}/bias", IDENTITY, optional=optional)]

  def norm(torch_name: str, flax_path: str) -> list[Rule]:
    return [Rule(f"{p}{torch_name}.weight", f"{flax_path}/scale", IDENTITY),
            Rule(f"{p}{torch_name}.bias", f"{flax_path}/bias", IDENTITY)]

  def resnet(t: str, f: str) -> list[Rule]:
    return (norm(f"{t}.norm1", f"{f}/norm1") + conv(f"{t}.conv1", f"{f}/conv1")
            + norm(f"{t}.norm2", f"{f}/norm2") + conv(f"{t}.conv2", f"{f}/conv2")
            + conv(f"{t}.nin_shortcut", f"{f}/nin_shortcut", optional=True))  # channel changes only

  def attn(t: str, f: str) -> list[Rule]:
    return norm(f"{t}.norm", f"{f}/norm") + [
        r for n in ("q", "k", "v", "proj_out") for r in conv(f"{t}.{n}", f"{f}/{n}")]

  def mid(t: str, f: str) -> list[Rule]:
    block_1, attn_1, block_2 = (f"{t}.mid.{n}" for n in layout.mid)
    return resnet(block_1, f"{f}/mid/block_1") + attn(attn_1, f"{f}/mid/attn_1") + resnet(
        block_2, f"{f}/mid/block_2")

  def levels(t: str, f: str, resample: str) -> list[Rule]:
    t_level, f_level = f"{t}.{{level}}", f"{f}_{{level}}"  # `{level}` stays a placeholder
    return (resnet(f"{t_level}.{layout.res}.{{block}}", f"{f_level}/block_{{block}}")
            + attn(f"{t_level}.attn.{{block}}", f"{f_level}/attn_{{block}}")
            + conv(f"{t_level}.{resample}.conv", f"{f_level}/{resample}/conv", optional=True))

  def coder(name: str, level_name: str, flax_level: str, resample: str) -> list[Rule]:
    return (conv(f"{name}.conv_in", f"{name}/conv_in") + mid(name, name)
            + levels(f"{name}.{level_name}", f"{name}/{flax_level}", resample)
            + norm(f"{name}.norm_out", f"{name}/norm_out")
            + conv(f"{name}.conv_out", f"{name}/conv_out"))

  rules = (coder("encoder", layout.down, "down", "downsample")
           + coder("decoder", layout.up, "up", "upsample")
           + conv("quant_conv", "quant_conv") + conv("post_quant_conv", "post_quant_conv")
           + [Rule(f"{p}quantize.embedding.weight", "quantize/embedding", IDENTITY)])
  if layout.codebook_used:
    rules.append(Rule(f"{p}quantize.codebook_used", None,
                      fill=lambda: np.zeros(DEEPSEEK_CODEBOOK_USED, np.float32)))
  return tuple(rules)


VQ_RULES_TRANSFORMERS = vq_rules(TRANSFORMERS)
VQ_RULES_DEEPSEEK = vq_rules(DEEPSEEK)
