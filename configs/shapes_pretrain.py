"""ShapesWorld's tiny shipped checkpoints: VQ tokenizer, SFT policy, judge; sizes, steps and rates.

  python tools/pretrain_shapes.py --config configs/shapes_pretrain.py               # all stages
  python tools/pretrain_shapes.py --config configs/shapes_pretrain.py --only vq     # one stage
  python tools/pretrain_shapes.py --config configs/shapes_pretrain.py:scale=0.1     # a 10% smoke run
  python tools/pretrain_shapes.py --config configs/shapes_pretrain.py:judge=plain --only judge  # the judge before

Every stage trains from scratch on freshly sampled ShapesWorld scenes of the train prompts, writes
metrics under `workdir/<stage>` and its checkpoint (safetensors + config.json) under
`out_dir/<stage>`. The policy trains in `policy.rounds` rounds, each saved when it ends; a stopped
run resumes at round k with `--config.policy.init_step=<k * policy.steps>`. The policy reads the VQ
from `out_dir/vq`, and so does the judge (it sees half its images through the VQ, as the policy's
are).
`scale` multiplies every stage's step count (warmups too).
"""
from ml_collections import ConfigDict

from gotr1_jax import config_lib


def _optimizer(lr: float, warmup: int, weight_decay: float = 0.0) -> ConfigDict:
  opt = config_lib.optimizer_defaults()
  opt.update(lr=lr, warmup_steps=warmup, final_lr_ratio=0.1, b1=0.9, b2=0.99, eps=1e-8,
             weight_decay=weight_decay, max_grad_norm=1.0)
  return opt


def vq_config(scale: float) -> ConfigDict:
  """Janus' VQ architecture at 64 px: 3 downsamplings (8 x 8 = 64 tokens), 512 codes of size 8."""
  return ConfigDict(dict(
      model=dict(embed_dim=8, num_embeddings=512, latent_channels=64, base_channels=16,
                 channel_multiplier=(1, 1, 2, 4), num_res_blocks=1, norm_groups=8, num_patches=8),
      loss=dict(object_pixel_weight=8.0, codebook_weight=1.0, commit_weight=0.25, background_weight=0.05),
      optimizer=_optimizer(lr=3e-3, warmup=max(1, int(50 * scale))),
      steps=max(1, int(1200 * scale)), batch_size=16, log_every=10, eval_images=120, grid_images=12))


def policy_config(scale: float) -> ConfigDict:
  """Janus' LLaMA trunk + generation path, tiny; SFT on BOS + prompt -> chain -> <begin_of_image> -> codes."""
  return ConfigDict(dict(
      model=dict(lm=dict(vocab_size=512, hidden_size=128, intermediate_size=384, num_layers=4,
                         num_heads=4, num_kv_heads=2, rope_theta=10000.0, rms_norm_eps=1e-6,
                         tie_embeddings=False),
                 gen_aligner_depth=2, gen_head_dim=128),
      # Rows whose prompt and chain are padded out (all but BOS and <begin_of_image>), trained on the
      # image codes only: the unconditional branch of classifier-free guidance (Janus' recipe).
      cfg_drop_prob=0.1,
      # BOS + templated prompt + chain + <begin_of_image>, left-padded; the 64 codes follow. Measured
      # over 3 scenes of every prompt of every split: median 132, longest 184 (chain alone: 146).
      max_text_length=192,
      image_loss_weight=2.0,  # weight of an image-code target relative to a chain-token target
      # Fraction of the image codes the model *reads* replaced by random codes (targets stay clean),
      # so that it learns to draw from the chain rather than from the codes before (sft_policy.py).
      image_input_noise=0.4,
      optimizer=_optimizer(lr=2e-3, warmup=max(1, int(50 * scale)), weight_decay=0.01),
      steps=max(1, int(1600 * scale)), batch_size=16, log_every=10,
      # Rounds of `steps` each, every round a fresh warmup + cosine schedule; round k > 0 continues from
      # the policy the round before saved (at later_round_lr) and reads the scene stream from step
      # k * steps on, so that its scenes are new. Each round measurably helped, the 8th too (+0.041
      # overall; README), and from 8 rounds `make demo` ends higher than from 5 or 7; rounds keep every stage of
      # the recipe rerunnable on its own.
      rounds=8, later_round_lr=1e-3,
      # One round on from a saved policy (sft_policy.train_policy): "" trains from scratch; a policy
      # directory continues from it (same architecture), its scene stream starting at init_step.
      # The pipeline sets both per round; set init_step to k * steps to resume the rounds at round k
      # (from init_checkpoint, or "" for the policy in out_dir).
      init_checkpoint="", init_step=0,
      # Closing check that the policy draws from its chain (pretrain/chain_reliance.py): image NLL of
      # reliance_batches x batch_size val scenes with the true text, shapes or colours permuted, chains rolled.
      reliance_batches=6,
      # The closing evaluation: val prompts sampled as GRPO samples them (temperature 1, CFG 3),
      # scored by the oracle; a greedy sample per prompt beside them; a grid of the first ones.
      eval=dict(prompts_per_category=8, num_samples=2, greedy=True, batch_prompts=8, grid_prompts=12,
                generation=dict(max_chain_tokens=160, cfg_weight=3.0, text_temperature=1.0,
                                image_temperature=1.0, prompt_buckets=(48,), image_prompt_buckets=(216,),
                                decode_batch_size=32))))


def judge_config(scale: float, recipe: str = "scene") -> ConfigDict:
  """A tiny Qwen2.5-VL (models/qwen_vl.py at small sizes: patch 4, merge 2, so a 56 px image is
  7 x 7 LM tokens) trained on GoT-R1's four judge questions with the oracle's answers
  (pretrain/judge_data.py), closing with its judge-vs-oracle correlations on val prompts.

  recipe "scene" (the shipped judge): its vision tower pre-trained on scenes first, then three
  phases (scene_judge); "plain": from scratch on the four questions, 2,000 steps (the judge recipe
  before, from which the judge experiments of sessions 9-17 in docs/shapes_findings.md start)."""
  if recipe not in ("scene", "plain"):
    raise ValueError(f"judge={recipe!r} must be 'scene' (the shipped judge) or 'plain' (the recipe before).")
  from configs.models import qwen2_5_vl_tiny
  model = qwen2_5_vl_tiny.get_config("hidden=128,layers=3")
  # A wider vision tower than the tiny default (32): at 32 the judge answered R_PI and R_spa with
  # one constant score (Spearman vs the oracle: R_PI undefined, combined 0.08; at 64: 0.22, 0.36).
  model.vision.update(hidden_size=64, intermediate_size=128, num_heads=4)
  c = ConfigDict(dict(
      model=model,
      image_size=56,  # judge images and layout canvases; a multiple of Qwen's 28 px unit
      patch_bucket=196,  # (56 / 4)^2 patches: every image compiles to one shape
      prompt_version="compact-v1",  # rewards/prompts.py: GoT-R1's questions, short wording
      # The image before the question (Qwen's usual order) or after it (then the answer starts at a
      # fixed distance from the image); a judge must be run as trained (config.judge_generation).
      images_first=True,
      # Layout canvas boxes coloured per object ("palette") or by the colour word in the object's
      # name ("named"; rewards/canvas.py); the judge must then be used with the same canvas.
      canvas_box_colours="palette",
      # Boxes drawn as outlines with their names ("outline", GoT-R1's canvas) or filled in their
      # colour without names ("filled", like the scenes a scene tower learnt; rewards/canvas.py).
      canvas_style="outline",
      # Question kinds per step: () = the four in turn; four weights (r_sem, r_spa, r_ri, r_pi) = drawn
      # with them. R_spa examples with the top score are kept with probability spa_top_keep (judge_train.py).
      # An R_spa draw is with probability spa_contrast_fraction a true layout or the same with two boxes
      # swapped (judge_data.layout_contrast_example).
      kind_weights=(), spa_top_keep=1.0, spa_contrast_fraction=0.0,
      # The share of steps that ask the caption question (name and box every object; judge_data.CAPTION)
      # instead, which a judge learns from the image alone and which lets it learn to ground a named
      # object (docs/shapes_findings.md). 0 for the shipped judge.
      caption_fraction=0.0,
      # The share of steps that show one object alone and ask its name (judge_data.NAMING), so that colour,
      # shape and texture are learned apart from place (docs/shapes_findings.md). 0 for the shipped judge.
      naming_fraction=0.0,
      # (hold, ramp): naming objects centred for `hold` steps, then spread to anywhere over `ramp` steps,
      # since the tiny ViT learns shapes of centred objects first (docs/shapes_findings.md); () = anywhere
      # from the start.
      naming_place_schedule=(),
      # The vision tower's own pre-training before the judge's (pretrain/judge_vision.py): lone objects
      # (colour, shape and texture heads over its mean token; objects centred for place_schedule[0] steps,
      # then spread to anywhere over place_schedule[1]) and, on scene_fraction of the steps, scenes (per
      # token: the attributes of the object there and its box). init: a tower it saved (<workdir>/vision/
      # tower) to start from. steps=0 and no init: none, as for the shipped judge.
      vision_pretrain=dict(steps=0, batch_size=32, lr=1e-3, place_schedule=(500, 600), log_every=50,
                           eval_objects=256, scene_fraction=0.0, eval_scenes=128, init=""),
      vision_frozen_steps=0,  # the tower is held still for the judge's first N steps (0: trained throughout)
      length_buckets=(96, 160, 256), vocab_size=1024, tokenizer_steps=40,
      corrupt_p=0.6,  # chains and images each corrupted with this probability (judge_data.py)
      vq_fraction=0.5,  # that fraction of images seen through the trained VQ, like the policy's
      optimizer=_optimizer(lr=1e-3, warmup=max(1, int(60 * scale))),
      steps=max(1, int(2000 * scale)), batch_size=16, log_every=20,
      fidelity_samples=120, prompt_buckets=(96, 160, 256), row_buckets=(16, 64),
      # Continue from a judge directory ("" = from scratch), and mix in a policy's own samples
      # (tools/make_judge_pool.py) with this probability per drawn example (0 = none).
      # The pool's "nothing found" R_RI answers are kept with this probability (judge_train.py).
      init_checkpoint="", policy_pool="", policy_fraction=0.0, policy_empty_grounding_keep=0.25,
      # The share of steps that rank whole groups of pi_rank_group pool samples by R_PI (the pool written
      # with make_judge_pool.py --group), adding pi_rank_weight times a pairwise loss (pretrain/judge_rank.py).
      pi_rank_fraction=0.0, pi_rank_group=8, pi_rank_weight=1.0,
      # How R_RI is asked of this judge when it scores (config.reward.ri_question; rewards/config.py).
      ri_question="ground",
      # Training in phases run one after the other, each a dict of the fields above it sets; phase k > 0
      # continues from phase k - 1's judge (pretrain/judge_train.phase_configs). () = one run.
      phases=()))
  return scene_judge(c, scale) if recipe == "scene" else c


def scene_judge(c: ConfigDict, scale: float) -> ConfigDict:
  """The shipped judge's recipe (docs/shapes_findings.md, "A tower pre-trained on scenes"). Its vision tower learns
  first, alone, what lies at each of the 7 x 7 tokens the LM reads (scene objective, 1,200 steps,
  place embeddings), then the judge trains in three phases: grounding (with captions and naming
  beside it) on the tower held still, 800 steps; the same with the tower trained on, 1,500; all
  four questions, 1,500. It reads R_RI from its caption answer (ri_question="caption"), since it
  boxes and names every object better than it picks out a named one. RoPE theta 10 and the
  question before the image, so that the answer starts at a fixed distance from the image (docs/shapes_findings.md).
  The prompt buckets reach 384 tokens: the longest R_sem questions need more than 256."""
  steps = lambda n: max(1, int(n * scale))  # noqa: E731
  c.model.lm.rope_theta = 10.0
  c.model.vision.abs_position_grid = 14
  c.images_first = False
  c.length_buckets = (96, 160, 256, 384, 512)
  c.prompt_buckets = (96, 160, 256, 384)
  c.vision_pretrain.update(steps=steps(1200), scene_fraction=1.0)
  c.caption_fraction, c.naming_fraction = 0.3, 0.1
  c.ri_question = "caption"
  grounding = (0.0, 0.0, 1.0, 0.0)
  c.phases = (dict(steps=steps(800), kind_weights=grounding, vision_frozen_steps=steps(800)),
              dict(steps=steps(1500), kind_weights=grounding),
              dict(steps=steps(1500), kind_weights=()))
  c.steps = sum(p["steps"] for p in c.phases)
  return c


def eval_config() -> ConfigDict:
  """tools/evaluate.py: K images per val prompt, sampled as GRPO samples them (temperature 1)."""
  return ConfigDict(dict(
      prompts_per_category=50, num_samples=4, batch_prompts=16, seed=0, grid_prompts=12,
      generation=dict(max_chain_tokens=192, cfg_weight=3.0, text_temperature=1.0,
                      image_temperature=1.0, prompt_buckets=(48,), image_prompt_buckets=(256,),
                      decode_batch_size=32)))


def get_config(arg: str | None = None) -> ConfigDict:
  a = config_lib.parse_arg(arg, scale=1.0, seed=0, judge="scene")
  return ConfigDict(dict(
      name="shapes_pretrain", seed=a.seed, workdir="runs/shapes_pretrain",
      out_dir="gotr1_jax/assets/checkpoints",
      vq=vq_config(a.scale), policy=policy_config(a.scale), judge=judge_config(a.scale, a.judge),
      eval=eval_config()))
