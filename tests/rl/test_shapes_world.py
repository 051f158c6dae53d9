"""The main job (rl/shapes_world.py + trainer) at a tiny config: 2 GRPO steps on ShapesWorld with a
tiny random Janus policy and the oracle's exact rewards; metrics, checkpoints and the report are
written, and re-running with more steps resumes from step 2."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from configs import shapes_demo, shapes_demo_oracle, shapes_spatial
from gotr1_jax.metrics import read_metrics
from gotr1_jax.rl import trainer
from tests.sampling.test_janus_generate import write_tiny_policy


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("policy")
  write_tiny_policy(d)
  return d


def tiny_config(policy_dir, data_dir, steps: int):
  config = shapes_demo_oracle.get_config(f"steps={steps},group_size=2,prompts=4,lora_rank=4")
  config.task.policy_checkpoint = str(policy_dir)
  config.task.data_dir = str(data_dir)
  config.task.data_config = "tiny"
  config.task.eval_prompts_per_category = 1
  config.task.eval_samples = 2
  config.task.eval_batch_prompts = 6
  config.generation.max_chain_tokens = 8
  config.generation.image_prompt_buckets = (64,)
  config.generation.decode_batch_size = 4
  config.checkpoint.every = 1
  config.checkpoint.async_save = False
  return config


def test_two_steps_then_resume(policy_dir, tmp_path):
  workdir = tmp_path / "run"
  last = trainer.train(tiny_config(policy_dir, tmp_path / "data", 2), str(workdir))
  for key in ("reward/mean", "reward/r_sem", "reward/r_spa", "reward/r_ri", "reward/r_pi", "reward/t2i_score",
              "loss/kl", "loss/kl_chain", "loss/kl_image", "train/grad_norm", "train/clip_frac", "perf/tokens_per_s",
              "adv/std"):
    assert key in last and np.isfinite(last[key]), key
  assert 0.0 <= last["reward/mean"] <= 1.0
  parts = [last[f"perf/{k}_s"] for k in ("rollout", "reward", "update")]  # where the step's time went
  assert min(parts) > 0 and sum(parts) == pytest.approx(last["perf/step_s"], rel=1e-6)
  rows = read_metrics(str(workdir / "metrics.csv"))
  assert [int(r["step"]) for r in rows if r["reward/mean"]] == [1, 2]
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1", "2"]
  assert any((workdir / "tensorboard").iterdir())
  # The oracle evaluation ran before the first and after the last step, on the same 6 prompts x 2.
  before = json.loads((workdir / "report" / "eval_before.json").read_text())
  after = json.loads((workdir / "report" / "eval_after.json").read_text())
  assert (before["step"], after["step"]) == (0, 2)
  assert set(before["per_category"]) == {"color", "shape", "texture", "spatial", "numeracy", "complex"}
  assert before["num_samples"] == after["num_samples"] == 12
  report = (workdir / "report.md").read_text()
  assert "| oracle score | before (step 0) | after (step 2) | change | 95% interval of the change |" in report
  assert "paired bootstrap over the val prompts" in report
  assert "| category | objects asked | planned in the chain | read with every attribute |" in report
  assert set(before["objects"]) == set(after["objects"]) and " → " in report.split("objects asked")[1]
  for f in ("reward_curve.png", "eval_before.png", "eval_after.png"):
    assert (workdir / "report" / f).stat().st_size > 0

  # The same command with more steps resumes from step 2 (the data position comes back too).
  trainer.train(tiny_config(policy_dir, tmp_path / "data", 3), str(workdir))
  rows = read_metrics(str(workdir / "metrics.csv"))
  assert [int(r["step"]) for r in rows if r["reward/mean"]] == [1, 2, 3]
  assert json.loads((workdir / "report" / "eval_after.json").read_text())["step"] == 3
  assert json.loads((workdir / "report" / "eval_before.json").read_text())["step"] == 0

  # trained_policy: the newest checkpoint's policy, LoRA merged; without one, the starting policy.
  import jax
  _, params, step = trainer.trained_policy(tiny_config(policy_dir, tmp_path / "data", 3), str(workdir))
  _, base, zero = trainer.trained_policy(tiny_config(policy_dir, tmp_path / "data", 3), str(tmp_path / "none"))
  moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
           for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(base))]
  assert (step, zero) == (3, 0) and max(moved) > 0

  # export_policy writes that policy as a Janus directory; a new run starts from it.
  from gotr1_jax.rl.export import export_policy
  from gotr1_jax.sampling.janus_generate import generator_from_checkpoint
  config = tiny_config(policy_dir, tmp_path / "data", 3)
  assert export_policy(config, str(workdir), str(tmp_path / "exported")) == 3
  _, exported, _ = generator_from_checkpoint(str(tmp_path / "exported"), dict(generation=config.generation))
  config.task.policy_checkpoint = str(tmp_path / "exported")
  _, restarted, zero = trainer.trained_policy(config, str(tmp_path / "none2"))
  assert zero == 0
  for tree in (exported, restarted):
    assert jax.tree.structure(tree) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # fp32 safetensors: bit-exact
  with pytest.raises(ValueError, match="holds no checkpoint"):
    export_policy(config, str(tmp_path / "none3"), str(tmp_path / "nothing"))


def test_demo_configs_kl_weights():
  # The measured choices (README): the judge run at 0.1, the exact-reward run at 0.03; args still win.
  assert shapes_demo.get_config().rl.beta == 0.1
  assert shapes_demo_oracle.get_config().rl.beta == 0.03
  assert shapes_demo_oracle.get_config("beta=0.1,steps=5").rl.beta == 0.1
  assert shapes_demo_oracle.get_config().reward.kind == "function"


def test_demo_configs_train_on_the_claims_categories():
  # README: both demo runs train on color, shape, texture and spatial prompts; categories=all on every one.
  for module in (shapes_demo, shapes_demo_oracle):
    assert tuple(module.get_config().task.train_categories) == ("color", "shape", "texture", "spatial")
    assert tuple(module.get_config("categories=all").task.train_categories) == ()
  with pytest.raises(ValueError, match="categories='attributes'; choose one of"):
    shapes_demo.get_config("categories=attributes")


def test_demo_asks_the_shipped_judge_as_it_was_trained():
  # The shipped judge was trained with the question before the image and reads R_RI from its caption
  # (its judge_usage.json); the demo config asks it so, and asking it in Qwen's order is refused.
  from gotr1_jax.pretrain.shipped import checkpoint_dir, judge_usage
  from gotr1_jax.rl.shapes_world import check_judge_usage
  from gotr1_jax.sampling.qwen_vl import QwenVLGenerationConfig
  shipped_judge = str(checkpoint_dir("judge"))
  assert judge_usage(shipped_judge)["judge_generation.images_first"] is False
  config = shapes_demo.get_config()
  check_judge_usage(config, shipped_judge)
  assert not QwenVLGenerationConfig.from_dict(config.judge_generation).images_first
  config.judge_generation.images_first = True
  with pytest.raises(ValueError, match="images_first=false"):
    check_judge_usage(config, shipped_judge)


def test_demo_step_fits_its_buckets():
  # A step's questions (one per sample) fill a judge row bucket exactly, not half of a larger one,
  # and a chain-sized image prompt gets a bucket below the one that holds a capped chain (config).
  from gotr1_jax.sampling.buckets import bucket_length
  from gotr1_jax.sampling.janus_generate import JanusGenerationConfig
  from gotr1_jax.sampling.qwen_vl import QwenVLGenerationConfig
  for arg in ("", "group_size=16,prompts=2", "prompts=2"):
    config = shapes_demo.get_config(arg)
    rows = config.rl.prompts_per_step * config.rl.group_size
    assert bucket_length(rows, QwenVLGenerationConfig.from_dict(config.judge_generation).row_buckets) == rows
  generation = JanusGenerationConfig.from_dict(shapes_demo.get_config().generation)
  assert bucket_length(130, generation.image_prompt_buckets) == 160
  assert generation.image_prompt_buckets[-1] >= 48 + generation.max_chain_tokens + 1


def test_demo_answer_bounds_hold_the_shipped_judges_answers():
  # The bounds are fitted (config): the top score and a caption of one object more than a scene
  # holds, with the longest names and two-digit pixels, fit with their stop token.
  from gotr1_jax.data.shapes_world.world import SceneObject, WorldConfig
  from gotr1_jax.pretrain.judge_data import caption_answer, score_answer
  from gotr1_jax.pretrain.shipped import checkpoint_dir
  from gotr1_jax.sampling.janus_generate import load_tokenizer
  config, world = shapes_demo.get_config(), WorldConfig()
  tokenizer = load_tokenizer(str(checkpoint_dir("judge")))
  tokens = lambda text: len(tokenizer(text)["input_ids"]) + 1  # noqa: E731
  bounds = config.reward.max_answer_tokens
  for kind in ("r_sem", "r_spa", "r_pi"):
    assert max(tokens(score_answer(v, kind)) for v in (0.0, 0.5, 1.0)) <= bounds[kind]
  longest = lambda names: max(names, key=len)  # noqa: E731
  obj = SceneObject(longest(world.shapes), longest([c.name for c in world.palette]), longest(world.textures),
                    (990, 990, 999, 999))
  size = (config.reward.judge_image_size,) * 2
  assert tokens(caption_answer([obj] * (world.max_objects + 1), size)) <= bounds["r_ri"]


def test_spatial_config_is_the_measured_layout_run():
  # README: R_spa alone, spatial prompts, chain loss, 120 steps, exact rewards at beta 0.03; args still win.
  config = shapes_spatial.get_config()
  assert (config.rl.steps, config.rl.beta, config.reward.kind) == (120, 0.03, "function")
  assert config.reward.combine == "weighted_sum"
  assert dict(config.reward.weights) == {"r_sem": 0.0, "r_spa": 1.0, "r_ri": 0.0, "r_pi": 0.0}
  assert tuple(config.task.train_categories) == ("spatial",) and config.task.loss_tokens == "chain"
  assert config.task.sample_images is False  # its loss and reward read the chain alone
  assert shapes_spatial.get_config("steps=5").rl.steps == 5


@pytest.mark.parametrize("field,value,message", [
    ("task.loss_tokens", "all", "needs config.task.loss_tokens='chain'"),
    ("reward.kind", "gotr1", "reward.kind='function' with config.task.reward_fn='oracle'"),
    ("task.reward_fn", "t2i_score", "reward.kind='function' with config.task.reward_fn='oracle'"),
    ("reward.combine", "product", "combine='weighted_sum' with weights.r_ri = weights.r_pi = 0"),
    ("reward.weights.r_pi", 1.0, "combine='weighted_sum' with weights.r_ri = weights.r_pi = 0"),
    ("rl.image_beta", 0.05, "no image codes for config.rl.image_beta=0.05 to weigh; leave it unset"),
])
def test_a_run_without_images_must_read_the_chain_alone(field, value, message):
  from gotr1_jax.rl.shapes_world import check_chain_only
  config = shapes_spatial.get_config()
  check_chain_only(config)  # the layout run itself is one
  *parents, name = field.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[name] = value
  with pytest.raises(ValueError, match=f"{re.escape(message)}.*or set config.task.sample_images=True"):
    check_chain_only(config)


def test_missing_checkpoint_names_the_fix(tmp_path):
  config = shapes_demo.get_config()
  config.task.policy_checkpoint = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="pretrain_shapes.py"):
    trainer.train(config, str(tmp_path / "run"))


def test_one_step_with_the_judge_logs_every_component(policy_dir, tmp_path):
  """reward.kind = "gotr1": a tiny random Qwen2.5-VL judge scores the step through the four GoT-R1
  questions; every component, its parse failures and the oracle's exact rewards are logged."""
  from tests.pretrain.test_judge_train import toy_judge_config, write_tiny_judge
  write_tiny_judge(tmp_path / "judge")
  config = shapes_demo.get_config("steps=1,group_size=2,prompts=4,lora_rank=4")
  tiny = tiny_config(policy_dir, tmp_path / "data", 1)
  config.task, config.generation, config.checkpoint = tiny.task, tiny.generation, tiny.checkpoint
  config.task.eval_every = 0
  config.reward.judge_checkpoint = str(tmp_path / "judge")
  config.reward.prompt_version = "v1"  # the toy judge's tokenizer was built on v1 questions
  c = toy_judge_config()
  config.reward.canvas.update(width=c.image_size, height=c.image_size)
  config.judge_generation = dict(prompt_buckets=(512,), row_buckets=(8,), patch_buckets=(c.patch_bucket,))
  last = trainer.train(config, str(tmp_path / "run"))
  for key in ("reward/r_sem", "reward/r_spa", "reward/r_ri", "reward/r_pi", "reward/mean",
              "reward/parse_fail/r_sem", "reward/parse_fail/r_ri", "reward/oracle_r_pi", "reward/oracle_t2i_score"):
    assert key in last and np.isfinite(last[key]), key
  assert 0.0 <= last["reward/mean"] <= 1.0


def test_a_judge_asked_otherwise_than_trained_names_the_fields(tmp_path):
  """A judge directory records how it must be asked (judge_usage.json, from its training config); a run
  that asks it otherwise stops before any step with every wrong field and its value."""
  import json
  from gotr1_jax.pretrain.judge_train import usage_of
  from gotr1_jax.rl.shapes_world import check_judge_usage
  from tests.pretrain.test_judge_train import toy_judge_config, write_tiny_judge
  write_tiny_judge(tmp_path / "judge")
  config = shapes_demo.get_config()
  config.reward.judge_checkpoint = str(tmp_path / "judge")
  check_judge_usage(config, str(tmp_path / "judge"))  # no record: nothing to check
  c = toy_judge_config()
  c.update(images_first=False, ri_question="caption", prompt_version="compact-v1")
  usage = usage_of(c)
  assert usage["judge_generation.images_first"] is False and usage["reward.canvas.width"] == 56
  (tmp_path / "judge" / "judge_usage.json").write_text(json.dumps(usage))
  config.judge_generation.images_first = True
  config.reward.ri_question = "ground"
  with pytest.raises(ValueError, match=r"images_first=false .*ri_question=caption \(the run has 'ground'\)"):
    check_judge_usage(config, str(tmp_path / "judge"))
  del config.judge_generation  # a run config without the block means Qwen's order: still refused
  config.reward.ri_question = "caption"
  with pytest.raises(ValueError, match="images_first=false"):
    check_judge_usage(config, str(tmp_path / "judge"))
  config.judge_generation = dict(images_first=False)
  check_judge_usage(config, str(tmp_path / "judge"))
  c.canvas_style = "filled"  # a judge trained on filled layout canvases is not asked with outlines
  (tmp_path / "judge" / "judge_usage.json").write_text(json.dumps(usage_of(c)))
  with pytest.raises(ValueError, match=r"canvas.style=filled \(the run has 'outline'\)"):
    check_judge_usage(config, str(tmp_path / "judge"))


def test_color_share_reward_reads_the_colour_and_the_sanity_config_uses_it():
  from configs import shapes_sanity
  from gotr1_jax.data.shapes_world.layout import sample_scene
  from gotr1_jax.data.shapes_world.prompts import parse_prompt
  from gotr1_jax.data.shapes_world.render import render_scene
  from gotr1_jax.rewards.judge import RewardBatch
  from gotr1_jax.rl.shapes_world import REWARD_FNS, color_share_reward_fn
  rng = np.random.default_rng(0)
  scenes = [sample_scene(parse_prompt(p, "color"), rng) for p in ("a red square", "a blue square")]
  red, blue = (render_scene(s) for s in scenes)
  batch = RewardBatch(prompts=["a"] * 3, chains=[""] * 3, images=np.stack([red, blue, np.full_like(red, 255)]),
                      group_size=3)
  share = color_share_reward_fn("red")(batch)["reward"]
  assert share[0] > 0.02 and share[1] == 0.0 and share[2] == 0.0
  # A solid square's share is its box's area (the antialiased rim aside).
  x1, y1, x2, y2 = scenes[0].objects[0].box
  assert share.dtype == np.float32
  np.testing.assert_allclose(share[0], (x2 - x1) * (y2 - y1) / 1000.0 ** 2, rtol=0.15)
  with pytest.raises(ValueError, match="sanity_color='teal'.*pick one of"):
    color_share_reward_fn("teal")
  config = shapes_sanity.get_config("steps=3")
  assert (config.reward.kind, config.task.reward_fn, config.rl.steps) == ("function", "color_share", 3)
  assert set(REWARD_FNS) == {"oracle", "t2i_score", "color_share"}


def test_t2i_reward_is_the_oracles_category_score():
  from gotr1_jax.data.shapes_world.chains import scene_chain
  from gotr1_jax.data.shapes_world.layout import sample_scene
  from gotr1_jax.data.shapes_world.prompts import parse_prompt
  from gotr1_jax.data.shapes_world.render import render_scene
  from gotr1_jax.rewards.judge import RewardBatch
  from gotr1_jax.rl.shapes_world import t2i_reward_fn
  spec = parse_prompt("a red square to the left of a blue circle", "spatial")
  scene = sample_scene(spec, np.random.default_rng(0))
  images = np.stack([render_scene(scene), np.full((64, 64, 3), 255, np.uint8)])
  batch = RewardBatch(prompts=[spec.text] * 2, chains=[scene_chain(scene)] * 2, group_size=2,
                      categories=["spatial"] * 2, images=images)
  out = t2i_reward_fn()(batch)
  np.testing.assert_array_equal(out["reward"], [1.0, 0.0])  # the true scene holds; a blank image does not
  np.testing.assert_array_equal(out["reward"], out["t2i_score"])
  assert set(out) >= {"r_sem", "r_spa", "r_ri", "r_pi"}


def test_the_oracle_reward_reads_r_spa_on_the_configured_scale():
  from ml_collections import ConfigDict
  from gotr1_jax.data.shapes_world.chains import scene_chain
  from gotr1_jax.data.shapes_world.prompts import parse_prompt
  from gotr1_jax.data.shapes_world.world import Scene, SceneObject
  from gotr1_jax.rewards.judge import RewardBatch
  from gotr1_jax.rl.shapes_world import REWARD_FNS, task_defaults
  spec = parse_prompt("a red square to the left of a blue circle", "spatial")
  left, right = (100, 400, 300, 600), (600, 400, 800, 600)
  swapped = scene_chain(Scene((SceneObject("square", "red", "solid", right),
                               SceneObject("circle", "blue", "solid", left))))
  batch = RewardBatch(prompts=[spec.text], chains=[swapped], group_size=1, categories=["spatial"],
                      images=np.full((1, 64, 64, 3), 255, np.uint8))
  assert task_defaults().exact_spa == "fraction"  # the measured runs' reward unless a config says otherwise
  fraction = REWARD_FNS["oracle"](task_defaults())(batch)["r_spa"]
  rubric = REWARD_FNS["oracle"](ConfigDict(dict(task_defaults().to_dict(), exact_spa="rubric")))(batch)["r_spa"]
  np.testing.assert_allclose([fraction[0], rubric[0]], [2 / 3, 2 / 9], rtol=1e-6)
  # Without images (task.sample_images=False) the same two rewards of the chain, and nothing else.
  chains_only = REWARD_FNS["oracle"](task_defaults())(dataclasses.replace(batch, images=None))
  assert set(chains_only) == {"r_sem", "r_spa"}
  full = REWARD_FNS["oracle"](task_defaults())(batch)
  np.testing.assert_array_equal(chains_only["r_spa"], fraction)
  np.testing.assert_array_equal(chains_only["r_sem"], full["r_sem"])
  with pytest.raises(ValueError, match=r"config.task.exact_spa='bands' must be one of \('fraction', 'rubric'\)"):
    REWARD_FNS["oracle"](ConfigDict(dict(task_defaults().to_dict(), exact_spa="bands")))


class _ListSource:
  def __init__(self, rows):
    self.rows, self.position = rows, 0

  def next(self, n):
    out = [self.rows[(self.position + i) % len(self.rows)] for i in range(n)]
    self.position += n
    return out

  def __len__(self):
    return len(self.rows)


def test_prompt_stream_keeps_the_asked_categories():
  from gotr1_jax.rl.shapes_world import PromptStream
  rows = [{"prompt": f"p{i}", "category": c} for i, c in enumerate(["color", "spatial", "shape", "spatial"])]
  stream = PromptStream(_ListSource(rows), ("spatial",))
  assert [r["prompt"] for r in stream.next(3)] == ["p1", "p3", "p1"]
  assert PromptStream(_ListSource(rows)).next(2) == rows[:2]
  with pytest.raises(ValueError, match="unknown categories \\['spatail'\\]"):
    PromptStream(_ListSource(rows), ("spatail",))
  with pytest.raises(ValueError, match="matches no prompt of the train split"):
    PromptStream(_ListSource(rows), ("texture",)).next(2)
