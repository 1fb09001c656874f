#!/usr/bin/env bash
# make_corpus.sh: (re)writes the seed corpora of fuzz/corpus from real files: the test data's
# models, configs and tokenizer, records as infllm writes them, a line of the demo's input, two
# HDF5 inputs (make_seeds.c, through h5pcc), one block of every ggml type, the chat templates
# of the tokenizer tests. The seeds are committed; run this after a format changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
c=fuzz/corpus
rm -rf "$c"
mkdir -p "$c"/{jsonl,hdf5_input,journal,hf_config,safetensors,gguf,dequant,tokenizer_json,tokenizer_text,chat_template}

# Inputs: every kind of record the reader takes.
cat >"$c/jsonl/fields.jsonl" <<'J'
{"id": "ids", "tokens": [5, 6, 7, 8], "max_new_tokens": 3}
{"id": "text", "prompt": "It is a truth universally acknowledged", "max_new_tokens": 5, "stop": ["."], "min_new_tokens": 1}
{"id": "chat", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}], "temperature": 0.8, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 1}
J
head -c 3000 inputs/demo.jsonl | head -n 1 >"$c/jsonl/demo_line.jsonl" || true
printf '{"id": "a", "tokens": [1, 2]}\n{"id": "b", "prompt": "x", "ignore_eos": true}' >"$c/jsonl/torn.jsonl"

tmp=$(mktemp -d /tmp/infllm-make-corpus.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# h5pcc leaves its object file in the working directory: build in the temporary folder.
(cd "$tmp" && h5pcc -o make_seeds "$OLDPWD/fuzz/make_seeds.c" >/dev/null 2>&1)
"$tmp/make_seeds" "$c/hdf5_input"

# Result records as `generate` writes them, for the journal reader.
cat >"$c/journal/records.jsonl" <<'J'
{"id":"a","status":"done","reason":"","finish_reason":"length","prompt_tokens":4,"generated_tokens":2,"tokens":[7,8],"text":"ab","preemptions":0,"queue_s":0.0,"first_token_s":0.1,"total_s":0.2,"creditors":[],"remote_blocks_max":0}
{"id":"b","status":"rejected","reason":"too long","finish_reason":"","prompt_tokens":9,"generated_tokens":0,"tokens":[],"text":"","preemptions":0,"queue_s":0.0,"first_token_s":0.0,"total_s":0.0,"creditors":[1],"remote_blocks_max":3}
J

cp tests/data/model/tiny_llama/config.json "$c/hf_config/tiny_llama.json"
for f in tests/data/golden/*/config.json; do cp "$f" "$c/hf_config/$(basename "$(dirname "$f")").json"; done
cp tests/data/model/tiny_llama/model.safetensors "$c/safetensors/tiny_llama.safetensors"
cp tests/data/model/tiny_llama.gguf tests/data/model/dequant_golden.gguf "$c/gguf/"
cp tests/data/tokenizer/trained_tokenizer.json "$c/tokenizer_json/"

# One block of each type the dequantizers take (first byte: the ggml type id).
python3 - "$c/dequant" <<'P'
import os, random, sys
random.seed(1)
# ggml ids and block bytes: F32 0:4, F16 1:2, Q4_0 2:18, Q4_1 3:20, Q5_0 6:22, Q5_1 7:24,
# Q8_0 8:34, Q2_K 10:84, Q3_K 11:110, Q4_K 12:144, Q5_K 13:176, Q6_K 14:210, BF16 30:2
for t, n in [(0, 4), (1, 2), (2, 18), (3, 20), (6, 22), (7, 24), (8, 34), (10, 84), (11, 110),
             (12, 144), (13, 176), (14, 210), (30, 2)]:
    with open(os.path.join(sys.argv[1], "type%02d" % t), "wb") as f:
        f.write(bytes([t]) + bytes(random.randrange(256) for _ in range(n * 2)))
P

printf 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.\n' >"$c/tokenizer_text/austen.txt"
printf 'caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 <|im_end|>\t\r\n  ' >"$c/tokenizer_text/unicode.txt"
printf '\xff\xfe\xc3 \x80abc\xe2\x82' >"$c/tokenizer_text/invalid_utf8.txt"

# Chat templates as model repositories write them, each followed by a conversation.
python3 - "$c/chat_template" <<'P'
import json, os, sys
d = json.load(open("tests/data/tokenizer/chat_golden.json"))
conv = [("system", "Be brief."), ("user", "Hello"), ("assistant", "Hi."), ("user", "Bye")]
for i, t in enumerate(d["templates"].values() if isinstance(d["templates"], dict) else d["templates"]):
    text = t if isinstance(t, str) else t.get("template", json.dumps(t))
    data = text.encode() + b"".join(b"\0" + r.encode() + b"\0" + m.encode() for r, m in conv)
    open(os.path.join(sys.argv[1], "template%d" % i), "wb").write(data)
P
echo "make_corpus: $(find "$c" -type f | wc -l) seeds in $c"
