"""Benchmarks our decoder LM against the PyTorch reference in one run and prints the ratios.

  python tools/bench_lm.py --size tiny          # CPU-sized, runs anywhere
  python tools/bench_lm.py --size janus_1b --dtype bfloat16 --batch 16 --prompt-len 128 --new-tokens 64

Both sides are built from the same transformers LlamaConfig with the same weights. Timed:
(1) a full forward over [batch, prompt_len] (training / scoring shape), (2) greedy generation of
`new_tokens` tokens (our compiled while_loop sampler vs transformers `generate` with its KV cache),
ours with the KV cache growing `--cache-block` slots at a time, then (3) ours with the whole cache
from the first token (cache_block 0), against the same torch time. Each is warmed up (compile) and
then timed as the median of `--repeats` runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import transformers  # noqa: E402

from gotr1_jax.convert import INSTALL_TORCH  # noqa: E402
try:
  import torch  # noqa: E402
except ModuleNotFoundError:
  sys.exit(f"tools/bench_lm.py times the torch reference too: {INSTALL_TORCH}.")

from gotr1_jax.convert.llm_rules import hf_lm_to_params, lm_config_from_hf  # noqa: E402
from gotr1_jax.models import llm  # noqa: E402
from gotr1_jax.sampling.autoregressive import Sampler, SamplingConfig  # noqa: E402
from gotr1_jax.sampling.text import lm_decode_fns  # noqa: E402

SIZES = {
    "tiny": dict(hidden_size=128, intermediate_size=344, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=4, vocab_size=1024),
    "janus_1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                     num_attention_heads=16, num_key_value_heads=16, vocab_size=102400),
    "janus_7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=30,
                     num_attention_heads=32, num_key_value_heads=32, vocab_size=102400),
}


def median_seconds(fn, repeats: int) -> float:
  fn()  # warm-up / compile
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
  ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
  ap.add_argument("--batch", type=int, default=4)
  ap.add_argument("--prompt-len", type=int, default=32)
  ap.add_argument("--new-tokens", type=int, default=32)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--cache-block", type=int, default=32, help="SamplingConfig.cache_block of row 2")
  args = ap.parse_args()

  torch_dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
  device = "cuda" if torch.cuda.is_available() else "cpu"
  hf_cfg = transformers.LlamaConfig(**SIZES[args.size], max_position_embeddings=4096,
                                    rms_norm_eps=1e-6, tie_word_embeddings=False)
  torch.manual_seed(0)
  ref = transformers.LlamaForCausalLM(hf_cfg).eval().to(device=device, dtype=torch_dtype)
  cfg = lm_config_from_hf(hf_cfg, dtype=args.dtype, param_dtype=args.dtype)
  # Stored in the run's dtype, as the reference's are: fp32 weights cast at every matmul would double what
  # bf16 decoding reads from memory.
  params = jax.tree.map(lambda w: jax.numpy.asarray(w, dtype=args.dtype), hf_lm_to_params(ref, cfg))
  model = llm.DecoderLM(cfg)

  rng = np.random.default_rng(0)
  tokens = rng.integers(3, hf_cfg.vocab_size, (args.batch, args.prompt_len)).astype(np.int32)
  mask = np.ones_like(tokens)
  t_tokens = torch.tensor(tokens, dtype=torch.long, device=device)
  t_mask = torch.ones_like(t_tokens)

  forward = jax.jit(lambda p, t, m: model.apply(p, t, m, method=llm.DecoderLM.forward))
  samplers = {b: Sampler(lm_decode_fns(model), SamplingConfig(max_new_tokens=args.new_tokens, greedy=True,
                                                               cache_block=b)) for b in (args.cache_block, 0)}

  def torch_sync():
    if device == "cuda":
      torch.cuda.synchronize()

  def ours_forward():
    forward(params, tokens, mask).block_until_ready()

  def ref_forward():
    with torch.no_grad():
      ref(input_ids=t_tokens, attention_mask=t_mask).logits
    torch_sync()

  def ours_generate(block=args.cache_block):
    samplers[block](params, tokens, mask, jax.random.PRNGKey(0)).tokens.block_until_ready()

  def ref_generate():
    with torch.no_grad():
      ref.generate(input_ids=t_tokens, attention_mask=t_mask, max_new_tokens=args.new_tokens,
                   min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0)
    torch_sync()

  print(f"device: jax {jax.devices()[0].device_kind} / torch {device}; size {args.size}, {args.dtype}, "
        f"batch {args.batch}, prompt {args.prompt_len}, new tokens {args.new_tokens}")
  rows = (("forward", ours_forward, ref_forward, args.batch * args.prompt_len),
          (f"generate (cache_block {args.cache_block})", ours_generate, ref_generate, args.batch * args.new_tokens),
          ("generate (cache_block 0)", lambda: ours_generate(0), ref_generate, args.batch * args.new_tokens))
  torch_seconds = {}  # each torch function timed once
  for name, ours, theirs, units in rows:
    a = median_seconds(ours, args.repeats)
    if theirs not in torch_seconds:
      torch_seconds[theirs] = median_seconds(theirs, args.repeats)
    b = torch_seconds[theirs]
    print(f"{name:27s} ours {a * 1e3:9.2f} ms ({units / a:10.0f} tok/s)   torch {b * 1e3:9.2f} ms "
          f"({units / b:10.0f} tok/s)   speed-up {b / a:5.2f}x")


if __name__ == "__main__":
  main()
