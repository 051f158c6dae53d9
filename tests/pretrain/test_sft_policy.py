"""The policy SFT stage (gotr1_jax/pretrain/sft_policy.py): the teacher-forced layout is what
JanusGenerator reads, a few steps lower the loss, the stage writes its evaluation, and the saved
checkpoint loads back through shipped.load_policy and generates exactly as the trained params do."""
from __future__ import annotations

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gotr1_jax.data.chain import parse_chain
from gotr1_jax.data.shapes_world.prompts import CATEGORIES
from gotr1_jax.data.shapes_world.tokenizer import load_tokenizer
from gotr1_jax.models.janus import JanusPolicy
from gotr1_jax.models.vq import VQModel
from gotr1_jax.pretrain import pipeline, sft_policy, shipped
from gotr1_jax.pretrain.scenes import SceneStream
from gotr1_jax.pretrain.sft_policy import (
    ExampleMaker, init_policy_state, janus_config_for, sft_batch, sft_loss, text_sequences, train_policy)
from gotr1_jax.pretrain.vq_train import vq_config_from_dict
from gotr1_jax.sampling import janus_generate as jg
from tests.pretrain.tiny import tiny_config

STEPS = 12
IDS = jg.SpecialIds(bos=1, image_start=4, pad=0)


def test_batch_layout_weights_and_cfg_rows():
  seqs = [[1, 20, 21, 30, 31, 32, 4], [1, 22, 33, 4]]  # BOS, prompt, chain, <begin_of_image>
  codes = np.array([[5, 6, 7], [8, 9, 10]])
  b = sft_batch(seqs, [3, 2], codes, np.array([False, True]), IDS, max_text_length=8, image_loss_weight=0.5)
  np.testing.assert_array_equal(b["tokens"], [[0, 1, 20, 21, 30, 31, 32, 4, 5, 6, 7],
                                              [0, 0, 0, 0, 1, 0, 0, 4, 8, 9, 10]])  # row 1: unconditional_rows
  np.testing.assert_array_equal(b["attention_mask"], [[0] + [1] * 10, [0] * 4 + [1] * 7])
  np.testing.assert_array_equal(b["is_image"][0], [False] * 8 + [True] * 3)
  # Entry t weights tokens[t + 1]: row 0's chain 30, 31, 32 and <begin_of_image>, then the codes;
  # the CFG row only its codes.
  np.testing.assert_array_equal(b["loss_weight"], [[0, 0, 0, 1, 1, 1, 1, .5, .5, .5],
                                                   [0, 0, 0, 0, 0, 0, 0, .5, .5, .5]])
  with pytest.raises(ValueError, match="max_text_length"):
    sft_batch(seqs, [3, 2], codes, np.array([False, False]), IDS, max_text_length=6)


def test_noisy_inputs_change_what_is_read_not_what_is_scored():
  seqs = [[1, 20, 21, 30, 4], [1, 22, 33, 4]]
  codes = np.array([[5, 6, 7], [8, 9, 10]])
  noisy = np.array([[5, 11, 7], [12, 9, 13]])
  clean = sft_batch(seqs, [3, 2], codes, np.array([False, False]), IDS, max_text_length=6)
  b = sft_batch(seqs, [3, 2], codes, np.array([False, False]), IDS, max_text_length=6, noisy_image_tokens=noisy)
  for k in clean:
    np.testing.assert_array_equal(b[k], clean[k])  # the targets and weights are the clean batch's
  np.testing.assert_array_equal(b["input_tokens"][:, :6], clean["tokens"][:, :6])
  np.testing.assert_array_equal(b["input_tokens"][:, 6:], noisy)
  assert "input_tokens" not in clean


def test_example_maker_noise_rate_and_the_loss_it_reads(trained):
  config, vq_config, vq_params, janus_config, params, *_ = trained
  gen = jg.JanusGenerator(JanusPolicy(janus_config), VQModel(vq_config), load_tokenizer(),
                          jg.JanusGenerationConfig.from_dict(config.policy.eval.generation))
  make = ExampleMaker(gen, vq_params, config.policy)
  scenes = SceneStream("val", 2).batch(0, 8)
  clean = make(scenes, np.random.default_rng(0), drop_prob=0.0, noise=0.0)
  noisy = make(scenes, np.random.default_rng(0), drop_prob=0.0, noise=0.5)
  assert "input_tokens" not in clean
  np.testing.assert_array_equal(noisy["tokens"], clean["tokens"])
  changed = noisy["input_tokens"] != noisy["tokens"]
  assert not changed[~noisy["is_image"]].any()
  # Each code is redrawn with p = 0.5 and the draw repeats it with p = 1/32: 0.48 expected.
  assert 0.40 < changed[noisy["is_image"]].mean() < 0.56
  # Reading the clean codes through input_tokens is the plain teacher-forced loss, to float error.
  same = dict(clean, input_tokens=clean["tokens"])
  a, b = sft_loss(params, gen.policy, clean)[0], sft_loss(params, gen.policy, same)[0]
  np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  config = tiny_config(steps=STEPS)
  vq_config = vq_config_from_dict(config.vq.model)
  vq_params = nn.unbox(jax.jit(VQModel(vq_config).init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  workdir = tmp_path_factory.mktemp("policy")
  janus_config, params, metrics = train_policy(config, str(workdir), vq_config, vq_params)
  return config, vq_config, vq_params, janus_config, params, metrics, workdir


def test_sequences_are_the_generator_reading_of_the_corpus_text(trained):
  config, vq_config, _, janus_config, *_ = trained
  tokenizer = load_tokenizer()
  gen = jg.JanusGenerator(JanusPolicy(janus_config), VQModel(vq_config), tokenizer,
                          jg.JanusGenerationConfig.from_dict(config.policy.eval.generation))
  scenes = SceneStream("train", 0).batch(0, 4)
  seqs, prompt_lengths = text_sequences(gen, scenes.prompts, scenes.chains)
  for s, n, p, c in zip(seqs, prompt_lengths, scenes.prompts, scenes.chains):
    assert s[:n] == gen.tokenize(p)
    # The tokenizer's training text (tokenizer.py's corpus): template, a space, the chain.
    assert s == tokenizer(jg.format_prompt(p) + " " + c)["input_ids"] + [gen.ids.image_start]
    assert parse_chain(gen.decode_chain(s[n:])) == parse_chain(c)
  assert janus_config.num_image_tokens == 64 and janus_config.vision is None
  assert janus_config.vq == vq_config


def test_a_few_steps_lower_the_loss(trained):
  config, vq_config, vq_params, janus_config, params, metrics, _ = trained
  gen = jg.JanusGenerator(JanusPolicy(janus_config), VQModel(vq_config), load_tokenizer(),
                          jg.JanusGenerationConfig.from_dict(config.policy.eval.generation))
  batch = ExampleMaker(gen, vq_params, config.policy)(SceneStream("val", 1).batch(0, 8),
                                                      np.random.default_rng(0), drop_prob=0.5)
  initial = init_policy_state(janus_config, config.policy.optimizer, STEPS, jax.random.key(config.seed)).params
  before = sft_loss(initial, gen.policy, batch)[1]
  after = sft_loss(params, gen.policy, batch)[1]
  # Measured: loss 4.66 -> 3.61, chain 6.23 -> 4.33, image 3.47 -> 3.06 (ln 512 = 6.24, ln 32 = 3.47);
  # the stage's own val batch (no CFG rows) ends at 3.69.
  assert float(after["loss/loss"]) < float(before["loss/loss"]) - 0.8, (before, after)
  assert float(after["loss/chain_nll"]) < float(before["loss/chain_nll"]) - 1.5
  assert float(after["loss/image_nll"]) < float(before["loss/image_nll"]) - 0.2
  assert float(after["loss/uncond_image_nll"]) < float(before["loss/uncond_image_nll"]) - 0.2
  # The stage's own val batch differs (no CFG rows): measured 3.44-3.69 against 4.23 before.
  assert metrics["val/loss"] < float(before["loss/loss"]) - 0.5


def test_stage_reports_how_much_the_policy_reads_its_chain(trained):
  config, vq_config, vq_params, janus_config, params, metrics, _ = trained
  for edit in ("true", "shapes_permuted", "colors_permuted", "chains_rolled"):
    assert np.isfinite(metrics[f"reliance/{edit}"]), edit
  gen = jg.JanusGenerator(JanusPolicy(janus_config), VQModel(vq_config), load_tokenizer(),
                          jg.JanusGenerationConfig.from_dict(config.policy.eval.generation))
  one = sft_policy.measure_chain_reliance(gen, params, vq_params, config.policy, 1, config.seed)
  # One batch of true text is the stage's own val batch: the same image NLL.
  np.testing.assert_allclose(one["reliance/true"], metrics["val/image_nll"], rtol=1e-5)


def test_stage_writes_oracle_scores_grid_and_samples(trained):
  config, *_, metrics, workdir = trained
  for k in ("eval/overall", "eval/valid_chain_frac", "eval/r_sem", "eval/color", "loss/chain_nll"):
    assert k in metrics and np.isfinite(metrics[k]), k
  assert 0.0 <= metrics["eval/valid_chain_frac"] <= 1.0
  assert os.path.exists(workdir / "images" / f"policy_generations_{STEPS:06d}.png")
  records = [json.loads(line) for line in open(workdir / "samples.jsonl")]
  assert len(records) == 6 and {r["category"] for r in records} == set(CATEGORIES)


def test_checkpoint_loads_back_and_generates_the_same(trained, tmp_path):
  config, vq_config, vq_params, janus_config, params, *_ = trained
  shipped.save_policy(tmp_path, janus_config, params, vq_params)
  loaded_config, loaded, loaded_vq = shipped.load_policy(tmp_path)
  # config.json spells out the head size the config left implicit
  assert loaded_config == dataclasses.replace(janus_config, lm=dataclasses.replace(
      janus_config.lm, head_dim=janus_config.lm.resolved_head_dim))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params), loaded)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(vq_params), loaded_vq)
  generation = jg.JanusGenerationConfig.from_dict(config.policy.eval.generation)
  ours = jg.JanusGenerator(JanusPolicy(janus_config), VQModel(vq_config), load_tokenizer(), generation)
  theirs = jg.JanusGenerator(JanusPolicy(loaded_config), VQModel(loaded_config.vq),
                             jg.load_tokenizer(str(tmp_path)), generation)
  prompts = ["a red circle to the left of a blue square", "two green stars"]
  a = ours.generate_batch(params, vq_params, prompts, jax.random.key(3))
  b = theirs.generate_batch(loaded, loaded_vq, prompts, jax.random.key(3))
  assert a.chain_ids == b.chain_ids and a.chains == b.chains
  np.testing.assert_array_equal(a.image_tokens, b.image_tokens)
  np.testing.assert_array_equal(a.images, b.images)
  assert b.images.shape == (2, 64, 64, 3)


def test_policy_stage_errors_name_the_fix(tmp_path):
  empty = tmp_path / "empty"
  with pytest.raises(FileNotFoundError) as error:  # no VQ in out_dir
    pipeline.run_stages(tiny_config(), ("policy",), str(tmp_path / "runs"), str(empty))
  assert f"cp -r {shipped.checkpoint_dir('vq')} {empty / 'vq'}" in str(error.value)
  assert f"--only vq --out_dir {empty}" in str(error.value)
  with pytest.raises(ValueError, match="num_patches=8"):
    janus_config_for(tiny_config().policy.model, vq_config_from_dict(dict(tiny_config().vq.model, num_patches=4)))


def test_init_checkpoint_continues_from_a_saved_policy(trained, tmp_path):
  config, vq_config, vq_params, janus_config, params, *_ = trained
  shipped.save_policy(tmp_path / "saved", janus_config, params, vq_params)
  config = tiny_config(steps=1)
  config.policy.update(init_checkpoint=str(tmp_path / "saved"), init_step=STEPS)
  config.policy.optimizer.lr = 1e-9  # one step that cannot move the weights measurably
  config.policy.eval.prompts_per_category = 0
  _, continued, metrics = train_policy(config, str(tmp_path / "work"), vq_config, vq_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), jax.device_get(params),
               jax.device_get(continued))
  # From scratch, the same step leaves the randomly initialised loss (above 4, measured 4.2).
  fresh_config = tiny_config(steps=1)
  fresh_config.policy.eval.prompts_per_category = 0
  *_, fresh = train_policy(fresh_config, str(tmp_path / "fresh"), vq_config, vq_params)
  assert metrics["val/loss"] < fresh["val/loss"] - 0.4, (metrics["val/loss"], fresh["val/loss"])


def test_init_checkpoint_errors_name_the_fix(trained, tmp_path):
  config, vq_config, vq_params, janus_config, params, *_ = trained
  config = tiny_config(steps=1)
  config.policy.init_checkpoint = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="init_checkpoint"):
    train_policy(config, str(tmp_path / "a"), vq_config, vq_params)
  shipped.save_policy(tmp_path / "saved", janus_config, params, vq_params)
  config.policy.init_checkpoint = str(tmp_path / "saved")
  config.policy.model.lm.intermediate_size *= 2
  with pytest.raises(ValueError, match="another architecture"):
    train_policy(config, str(tmp_path / "b"), vq_config, vq_params)


def test_policy_stage_runs_its_rounds_each_on_from_the_last(trained, tmp_path, monkeypatch):
  config, vq_config, vq_params, *_ = trained
  shipped.save_vq(tmp_path / "out" / "vq", vq_config, vq_params)
  config = tiny_config(steps=2)
  config.policy.update(rounds=2, later_round_lr=1e-3)
  config.policy.eval.prompts_per_category = 0
  seen = []
  real = sft_policy.train_policy

  def spy(round_config, workdir, *args):
    p = round_config.policy
    seen.append((p.init_step, p.init_checkpoint, p.optimizer.lr, os.path.basename(workdir)))
    return real(round_config, workdir, *args)

  monkeypatch.setattr(sft_policy, "train_policy", spy)
  pipeline.run_stages(config, ("policy",), str(tmp_path / "runs"), str(tmp_path / "out"))
  dest = str(tmp_path / "out" / "policy")
  assert seen == [(0, "", config.policy.optimizer.lr, "round0"), (2, dest, 1e-3, "round1")]
  assert os.path.exists(tmp_path / "runs" / "policy" / "round1" / "metrics.csv")
  shipped.load_policy(dest)  # the last round's policy is the stage's checkpoint
  # Resuming at round 1 continues from the policy in out_dir; a step that is no round start fails.
  seen.clear()
  config.policy.init_step = 2
  pipeline.run_stages(config, ("policy",), str(tmp_path / "runs2"), str(tmp_path / "out"))
  assert seen == [(2, dest, 1e-3, "round1")]
  config.policy.init_step = 3
  with pytest.raises(ValueError, match="init_step=3 must be k"):
    pipeline.run_stages(config, ("policy",), str(tmp_path / "runs3"), str(tmp_path / "out"))
