"""pretrain/judge_train.py at a toy size: the batch puts the loss on the answer tokens only, a few
steps lower the loss, and the trained judge runs through the real reward path (JudgeRewardModel over
QwenVLGenerator) with its parse failures counted, never raised."""
from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from configs.models import qwen2_5_vl_tiny
from gotr1_jax import config_lib
from gotr1_jax.data.shapes_world.prompts import load_prompts
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.models.qwen_image_processing import QwenImageConfig
from gotr1_jax.models.qwen_vl import QwenVL
from gotr1_jax.pretrain import judge_train as jt
from gotr1_jax.sampling.qwen_vl import QwenVLGenerator


def toy_judge_config(steps: int = 6) -> ConfigDict:
  opt = config_lib.optimizer_defaults()
  opt.update(lr=3e-3, warmup_steps=1, weight_decay=0.0)
  return ConfigDict(dict(
      model=qwen2_5_vl_tiny.get_config("hidden=32,layers=1"), image_size=56, patch_bucket=196,
      length_buckets=(256, 512), vocab_size=600, tokenizer_steps=4, batch_size=4, steps=steps, log_every=2,
      corrupt_p=0.6, vq_fraction=0.0, optimizer=opt, fidelity_samples=6, prompt_buckets=(512,), row_buckets=(8,)))


def test_batch_weights_only_the_answer():
  c = toy_judge_config()
  world, reward = WorldConfig(), jt.reward_config(c)
  specs = load_prompts("spatial", "train")[:4]
  tok = jt.build_judge_tokenizer(specs, c, reward, world)
  gen = QwenVLGenerator(QwenVL(jt.judge_model_config(c, len(tok))), None, tok, jt.generation_config(c),
                        QwenImageConfig(min_pixels=56 * 56, max_pixels=56 * 56))
  examples = jt.example_stream(specs, 0, c, reward, world)(0)
  batch = jt.judge_batch(gen, examples, c.length_buckets, c.patch_bucket)
  for i, e in enumerate(examples):
    targets = batch["tokens"][i, 1:][batch["loss_weight"][i] > 0]
    assert tok.decode(targets.tolist()) == e.answer + "<|im_end|>"
    prompt_len = len(gen.prompt_row(e.text, e.image).ids)
    assert batch["mask"][i].sum() == prompt_len + len(targets)
  assert batch["positions"].shape == (3, 4, batch["tokens"].shape[1])
  assert batch["tokens"].shape[1] in c.length_buckets
  assert {e.kind for e in examples} == {"r_sem"}  # step 0's kind


def test_image_after_the_question_when_configured():
  c = toy_judge_config()
  assert jt.generation_config(c).images_first  # the default: Qwen's order, the shipped judge's
  c.images_first = False
  specs = load_prompts("spatial", "train")[:4]
  reward = jt.reward_config(c)
  tok = jt.build_judge_tokenizer(specs, c, reward, WorldConfig())
  gen = QwenVLGenerator(QwenVL(jt.judge_model_config(c, len(tok))), None, tok, jt.generation_config(c),
                        QwenImageConfig(min_pixels=56 * 56, max_pixels=56 * 56))
  example = next(e for step in range(4) for e in jt.example_stream(specs, 0, c, reward, WorldConfig())(step)
                 if e.image is not None)
  text = tok.decode(gen.prompt_row(example.text, example.image).ids)
  # the question, then the image's 49 merged tokens, then the end of the user turn
  assert text.index(example.text) < text.index("<|vision_start|>")
  assert text.endswith("<|image_pad|>" * 49 + "<|vision_end|><|im_end|>\n<|im_start|>assistant\n")


def test_layout_canvases_are_drawn_as_configured():
  """The judge learns R_spa on canvases drawn with judge.canvas_box_colours (and at its image size)."""
  c = toy_judge_config()
  assert jt.reward_config(c).canvas.box_colours == "palette"
  c.canvas_box_colours = "named"
  reward = jt.reward_config(c)
  assert (reward.canvas.box_colours, reward.canvas.width, reward.canvas.height) == ("named", 56, 56)
  spa = [e for e in jt.example_stream(load_prompts("spatial", "train")[:4], 0, c, reward, WorldConfig())(1)]
  assert {e.kind for e in spa} == {"r_spa"}
  from PIL import ImageColor
  words = {w: ImageColor.getrgb(w) for w in WorldConfig().color_names}
  # every canvas shows at least one box in the exact colour of a ShapesWorld colour word
  assert all(any(np.all(e.image == rgb, -1).any() for rgb in words.values()) for e in spa)


def test_kind_weights_and_top_score_keep_shape_the_stream():
  import pytest
  from gotr1_jax.pretrain.judge_data import score_answer
  c = toy_judge_config()
  world, reward = WorldConfig(), jt.reward_config(c)
  specs = load_prompts("spatial", "train")[:8]
  c.kind_weights, c.spa_top_keep = (0, 1, 0, 0), 0.0
  stream = jt.example_stream(specs, 0, c, reward, world)
  for step in range(3):  # only R_spa, and never the top score
    batch = stream(step)
    assert len(batch) == c.batch_size and {e.kind for e in batch} == {"r_spa"}
    assert all(e.answer != score_answer(1.0, "r_spa") for e in batch)
  c.kind_weights, c.spa_top_keep = (1, 1, 0, 0), 1.0
  kinds = {jt.example_stream(specs, 0, c, reward, world)(step)[0].kind for step in range(12)}
  assert kinds == {"r_sem", "r_spa"}
  # spa_contrast_fraction = 1: every R_spa question is a layout contrast of a prompt with a relation.
  c.kind_weights, c.spa_contrast_fraction = (0, 1, 0, 0), 1.0
  mixed = load_prompts("color", "train")[:8] + specs
  batch = jt.example_stream(mixed, 0, c, reward, world)(0)
  assert all(any(f"Prompt: {s.text}\n" in e.text for s in specs) for e in batch)
  c.kind_weights = (1, -1, 0, 0)
  with pytest.raises(ValueError, match="kind_weights"):
    jt.example_stream(specs, 0, c, reward, world)


def test_caption_fraction_replaces_that_share_of_steps_and_leaves_the_rest():
  import pytest
  from gotr1_jax.pretrain.judge_data import CAPTION, CAPTION_QUESTION
  c = toy_judge_config()
  world, reward = WorldConfig(), jt.reward_config(c)
  specs = load_prompts("spatial", "train")[:8]
  c.kind_weights = (1, 1, 1, 1)
  plain = [jt.example_stream(specs, 0, c, reward, world)(step)[0].kind for step in range(40)]
  c.caption_fraction = 0.5
  stream = jt.example_stream(specs, 0, c, reward, world)
  mixed = [stream(step) for step in range(40)]
  kinds = [b[0].kind for b in mixed]
  assert 10 < kinds.count(CAPTION) < 30 and all(len({e.kind for e in b}) == 1 for b in mixed)
  assert all(k == p for k, p in zip(kinds, plain) if k != CAPTION)  # the other steps keep their kinds
  caption = next(b for b in mixed if b[0].kind == CAPTION)
  assert len(caption) == c.batch_size and all(e.text == CAPTION_QUESTION and e.image is not None for e in caption)
  c.caption_fraction = 1.0
  with pytest.raises(ValueError, match="caption_fraction"):
    jt.example_stream(specs, 0, c, reward, world)


def test_naming_fraction_adds_naming_steps_beside_caption_steps():
  import pytest
  from gotr1_jax.pretrain.judge_data import CAPTION, NAMING, NAMING_QUESTION
  c = toy_judge_config()
  world, reward = WorldConfig(), jt.reward_config(c)
  specs = load_prompts("spatial", "train")[:8]
  c.kind_weights, c.caption_fraction = (1, 1, 1, 1), 0.3
  plain = [jt.example_stream(specs, 0, c, reward, world)(step)[0].kind for step in range(40)]
  c.naming_fraction = 0.3
  kinds = [jt.example_stream(specs, 0, c, reward, world)(step)[0].kind for step in range(40)]
  # Caption steps stay where they were; naming takes some of GoT-R1's steps; the rest keep their kinds.
  assert [k == CAPTION for k in kinds] == [p == CAPTION for p in plain]
  assert 4 < kinds.count(NAMING) < 20 and all(k == p for k, p in zip(kinds, plain) if k != NAMING)
  naming = jt.example_stream(specs, 0, c, reward, world)(kinds.index(NAMING))
  assert len(naming) == c.batch_size and all(e.text == NAMING_QUESTION and e.answer for e in naming)
  # A place schedule: naming objects centred before `hold`, anywhere after hold + ramp.
  from gotr1_jax.data.shapes_world import detect
  step = kinds.index(NAMING)
  c.naming_place_schedule = (step + 1, 5)
  centres = [d.box for e in jt.example_stream(specs, 0, c, reward, world)(step) for d in detect.detect_objects(e.image)]
  assert centres and all(abs((b[0] + b[2]) / 2 - 500) < 40 and abs((b[1] + b[3]) / 2 - 500) < 40 for b in centres)
  c.naming_place_schedule = (-1, 5)
  with pytest.raises(ValueError, match="naming_place_schedule"):
    jt.example_stream(specs, 0, c, reward, world)
  c.naming_place_schedule = ()
  c.naming_fraction = 0.7
  with pytest.raises(ValueError, match="naming_fraction"):
    jt.example_stream(specs, 0, c, reward, world)


def test_training_lowers_the_loss_and_the_judge_scores(tmp_path):
  config = ConfigDict(dict(seed=0, judge=toy_judge_config(steps=8)))
  cfg, params, tok, gen_cfg, final = jt.train_judge(config, str(tmp_path))
  from gotr1_jax.metrics import read_metrics
  losses = [float(r["loss/loss"]) for r in read_metrics(str(tmp_path / "metrics.csv")) if r.get("loss/loss")]
  assert losses[-1] < losses[0]
  # The closing fidelity check ran through the real reward path; unreadable answers were counted.
  assert final["fidelity/parse_fail/r_sem"] >= 0 and "fidelity/r_pi_spearman" in final
  assert np.isfinite(final["loss/loss"])


def write_tiny_judge(directory) -> None:
  """A randomly initialised toy judge saved as the pipeline saves the shipped one (for tool tests)."""
  import jax
  import flax.linen as nn
  from gotr1_jax.models.qwen_vl import init_qwen_vl
  from gotr1_jax.pretrain import shipped
  c = toy_judge_config()
  tok = jt.build_judge_tokenizer(load_prompts("spatial", "train")[:4], c, jt.reward_config(c), WorldConfig())
  cfg = jt.judge_model_config(c, len(tok))
  shipped.save_judge(directory, cfg, nn.unbox(init_qwen_vl(cfg, jax.random.key(0))), tok, c.image_size)


def test_continuing_from_a_judge_with_the_policys_samples(tmp_path):
  """judge.init_checkpoint keeps the saved judge's tokenizer and weights as the start; with
  judge.policy_fraction = 1 every example comes from the policy pool."""
  import jax
  from gotr1_jax.pretrain import judge_data
  from gotr1_jax.sampling.qwen_vl import generator_from_checkpoint
  write_tiny_judge(tmp_path / "judge")
  start = generator_from_checkpoint(tmp_path / "judge")
  # Saving again what was loaded writes no trace of where it was loaded from.
  from gotr1_jax.pretrain import shipped
  shipped.save_judge(tmp_path / "again", start.model.config, start.params, start.tokenizer, 56)
  import json
  saved = json.loads((tmp_path / "again" / "tokenizer_config.json").read_text())
  assert not {"is_local", "local_files_only"} & set(saved) and saved["eos_token"] == "<|im_end|>"
  specs = load_prompts("color", "train")[:2]
  rng = np.random.default_rng(0)
  pairs = [judge_data.sample_pair(s, rng) for s in specs]
  pool = judge_data.PolicyPool([s.text for s in specs], ["color"] * 2, [c for c, _ in pairs],
                               np.stack([im for _, im in pairs]))
  pool.save(str(tmp_path / "pool.npz"))
  c = toy_judge_config(steps=2)
  c.update(init_checkpoint=str(tmp_path / "judge"), policy_pool=str(tmp_path / "pool.npz"), policy_fraction=1.0,
           fidelity_samples=0)
  world, reward = WorldConfig(), jt.reward_config(c)
  examples = jt.example_stream(load_prompts("spatial", "train")[:4], 0, c, reward, world, pool=pool)(0)
  assert all(any(f"Prompt: {s.text}\n" in e.text for s in specs) for e in examples)
  # "Nothing found" groundings of the pool are thinned (here dropped): a blank image has only those.
  blank = judge_data.PolicyPool(pool.prompts, pool.categories, pool.chains,
                                np.stack([np.full_like(pool.images[0], 255), pool.images[1]]))
  def stream(keep):
    return jt.example_stream(specs, 0, ConfigDict(dict(c.to_dict(), policy_empty_grounding_keep=keep)), reward, world,
                             pool=blank)(2)

  grounding = stream(0.0)
  assert {e.kind for e in grounding} == {"r_ri"} and all(e.answer != jt.EMPTY_GROUNDING for e in grounding)
  kept = stream(1.0)
  assert any(e.answer == jt.EMPTY_GROUNDING for e in kept)
  cfg, params, tok, _, final = jt.train_judge(ConfigDict(dict(seed=0, judge=c)), str(tmp_path / "run"))
  assert tok.get_vocab() == start.tokenizer.get_vocab() and cfg == start.model.config
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), params, start.params)
  assert 0 < max(jax.tree.leaves(moved)) < 0.1  # two small steps away from the saved judge
  assert np.isfinite(final["loss/loss"])


def test_phase_configs_chain_the_judges_training():
  """Each phase sets its own fields; later phases draw their own examples, pre-train no tower, and
  only the last runs the closing fidelity check. Fields the pipeline chains through are refused."""
  import pytest
  from configs.shapes_pretrain import get_config
  config = get_config()
  phases = jt.phase_configs(config)
  assert [p.judge.steps for p in phases] == [800, 1500, 1500] and config.judge.steps == 3800
  assert [p.seed for p in phases] == [0, 1, 2]
  assert [p.judge.vision_frozen_steps for p in phases] == [800, 0, 0]
  assert [p.judge.vision_pretrain.steps for p in phases] == [1200, 0, 0]
  assert [tuple(p.judge.kind_weights) for p in phases] == [(0, 0, 1, 0)] * 2 + [()]
  assert [p.judge.fidelity_samples for p in phases] == [0, 0, 120]
  assert all(p.judge.phases == () and p.judge.caption_fraction == 0.3 for p in phases)
  assert jt.reward_config(phases[-1].judge).ri_question == "caption"
  assert jt.phase_configs(get_config("judge=plain")) == [get_config("judge=plain")]
  for bad, match in ((dict(stepz=3), "stepz"), (dict(init_checkpoint="x"), "init_checkpoint"), (3, "dict")):
    config.judge.phases = (dict(steps=1), bad)
    with pytest.raises(ValueError, match=match):
      jt.phase_configs(config)
  config.judge.phases = get_config().judge.phases
  config.judge.steps = 600  # an override the phases would ignore
  with pytest.raises(ValueError, match=r"judge.steps=600, but config.judge.phases run 800\+1500\+1500 = 3800"):
    jt.phase_configs(config)
  with pytest.raises(ValueError, match="plain"):
    get_config("judge=fancy")


def test_pipeline_runs_the_phases_in_turn_and_resumes(tmp_path):
  """Phase 2 continues from phase 1's saved judge; run again, a saved phase is not rerun and the
  final judge comes out the same to the last bit."""
  import os
  from gotr1_jax.pretrain import pipeline
  from gotr1_jax.sampling.qwen_vl import generator_from_checkpoint
  c = toy_judge_config(steps=4)  # the phases' total
  c.update(fidelity_samples=0, vision_frozen_steps=0, phases=(dict(steps=2, vision_frozen_steps=2), dict(steps=2)))
  config = ConfigDict(dict(seed=0, judge=c))
  pipeline.run_stages(config, ("judge",), str(tmp_path / "runs"), str(tmp_path / "out"))
  first = generator_from_checkpoint(tmp_path / "runs" / "judge" / "phase0" / "judge")
  final = generator_from_checkpoint(tmp_path / "out" / "judge")
  assert first.tokenizer.get_vocab() == final.tokenizer.get_vocab()
  for k in (0, 1):
    assert (tmp_path / "runs" / "judge" / f"phase{k}" / "metrics.csv").is_file()
  import jax
  visual = lambda p: jax.tree.leaves(p["params"]["visual"])  # noqa: E731
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(visual(first.params),
                                                                                   visual(final.params)))
  assert 0 < moved < 0.1  # phase 2 trained the tower phase 1 held still, a step on from phase 1's
  saved = tmp_path / "runs" / "judge" / "phase0" / "judge" / "model.safetensors"
  stamp = os.stat(saved).st_mtime_ns
  (tmp_path / "out" / "judge" / "model.safetensors").unlink()
  pipeline.run_stages(config, ("judge",), str(tmp_path / "runs"), str(tmp_path / "out"))
  assert os.stat(saved).st_mtime_ns == stamp  # phase 1 was not run again
  again = generator_from_checkpoint(tmp_path / "out" / "judge")
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(final.params), jax.tree.leaves(again.params)))
