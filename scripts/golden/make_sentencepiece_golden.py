#!/usr/bin/env python3
"""make_sentencepiece_golden.py: golden data for infllm's SentencePiece-style BPE (the tokenizer
family of Llama-2, Mistral and TinyLlama: "▁" for spaces, byte fallback, merges ranked by piece
score), from the libraries that define it.

A BPE model is trained by the `sentencepiece` library on Jane Austen's six novels with
Llama-2's trainer settings (identity normalization, a dummy prefix, extra whitespace kept,
digits split, byte fallback, unk/bos/eos = 0/1/2). From it, this script writes into
tests/data/tokenizer/:

  spm_austen.model              the SentencePiece model (the reference for the GGUF form)
  spm_legacy_tokenizer.json     the tokenizer.json that Llama-2, Mistral and TinyLlama publish,
                                built with the `tokenizers` library: normalizer Prepend("▁") +
                                Replace(" ", "▁"), no pre-tokenizer, BPE with byte_fallback and
                                fuse_unk, merges ranked by the merged piece's score (as
                                transformers' LlamaConverter does), "<s>" post-processor,
                                Replace / ByteFallback / Fuse / Strip decoder
  spm_metaspace_tokenizer.json  the non-legacy form: no normalizer, a Metaspace pre-tokenizer
                                (prepend_scheme "first", split false)
  spm_austen.gguf               a vocabulary-only GGUF as llama.cpp's converter writes it
                                (tokenizer.ggml.model "llama", tokens, scores, token types)
  spm_golden.json               the samples of make_tokenizer_golden.py (Austen, GPL-3, unicode,
                                emoji, digits, whitespace runs, code, random mixes) plus Llama-2
                                chat markup, with the ids `tokenizers` gives for both
                                tokenizer.json forms (with the BOS) and their decoded text, and
                                the ids `sentencepiece` gives (for the texts without <s> / </s>,
                                which SentencePiece reads as plain text)
  spm_chat_golden.json          conversations rendered by Jinja (as transformers'
                                apply_chat_template renders them) with the Llama-2-chat template,
                                Mistral-7B-Instruct's as first published and its later v0.2
                                template with a system message, and the legacy tokenizer's ids;
                                conversations a template refuses are recorded as refused

Run inside the golden-data virtualenv (make_logits_golden.py creates it; it has sentencepiece,
tokenizers and gguf):

  .venv-golden/bin/python scripts/golden/make_sentencepiece_golden.py [--austen-deb-dir DIR]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_golden import (CONVERSATIONS, DATA, austen_novels,  # noqa: E402
                                   handmade_samples, write_json)

VOCAB_SIZE = 2000
SPECIAL = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello!</s><s>[INST] Again? [/INST]"


# The chat templates as the models publish them in tokenizer_config.json.
LLAMA2_TEMPLATE = (  # meta-llama/Llama-2-7b-chat-hf
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and "
    "system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
    "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}")
MISTRAL_TEMPLATE = (  # mistralai/Mistral-7B-Instruct-v0.1 and v0.2 as first published
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}")
MISTRAL_SYSTEM_TEMPLATE = (  # mistralai/Mistral-7B-Instruct-v0.2 as later updated
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = "
    "messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n"
    "    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}\n        {{- raise_exception('After the optional system "
    "message, conversation roles must alternate user/assistant/user/assistant/...') }}\n"
    "    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first "
    "and system_message is defined %}\n            {{- ' [INST] ' + system_message + "
    "'\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n"
    "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n"
    "    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + "
    "eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant "
    "roles are supported, with the exception of an initial optional system message!') }}\n"
    "    {%- endif %}\n{%- endfor %}\n")


def chat_golden(tok):
    import jinja2.sandbox

    class Refused(Exception):
        pass

    def raise_exception(message):
        raise Refused(message)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    templates = {"llama2": LLAMA2_TEMPLATE, "mistral": MISTRAL_TEMPLATE,
                 "mistral_system": MISTRAL_SYSTEM_TEMPLATE}
    conversations = dict(CONVERSATIONS)
    conversations["system_multi_turn"] = [
        {"role": "system", "content": " Answer briefly. "},
        {"role": "user", "content": "Who wrote Emma?"},
        {"role": "assistant", "content": " Jane Austen. "},
        {"role": "user", "content": "When?"}]
    conversations["two_users"] = [{"role": "user", "content": "a"},
                                  {"role": "user", "content": "b"}]
    cases = []
    for tname, source in templates.items():
        template = env.from_string(source)
        for cname, messages in conversations.items():
            case = {"template": tname, "conversation": cname}
            try:
                text = template.render(messages=messages, add_generation_prompt=True,
                                       bos_token="<s>", eos_token="</s>")
                case.update({"text": text,
                             "ids": tok.encode(text, add_special_tokens=False).ids})
            except Refused as e:
                case["refused"] = str(e)
            cases.append(case)
    write_json("spm_chat_golden.json", {"templates": templates, "conversations": conversations,
                                        "cases": cases})


def train(novels, prefix):
    import sentencepiece as spm
    # Lines from an iterator rather than a file, so that no local path lands in the model.
    # The model is written through model_writer for the same reason (model_prefix is stored).
    import io
    lines = "\n".join(novels).split("\n")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe", vocab_size=VOCAB_SIZE,
        byte_fallback=True, character_coverage=0.9995, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        max_sentence_length=100000, num_threads=2, minloglevel=2)
    with open(prefix + ".model", "wb") as f:
        f.write(model.getvalue())
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def pieces(sp):
    """(piece, score, GGUF token type) by id: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte."""
    out = []
    for i in range(sp.get_piece_size()):
        kind = (2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i)
                else 6 if sp.is_byte(i) else 1)
        out.append((sp.id_to_piece(i), sp.get_score(i), kind))
    return out


def merges_by_score(table):
    """BPE merges of the normal pieces, ranked by the merged piece's score then its id (what
    transformers' LlamaConverter derives from a SentencePiece model)."""
    normal = {p: (score, i) for i, (p, score, kind) in enumerate(table) if kind == 1}
    ranked = []
    for piece, (score, i) in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, i, left, right))
    return [(left, right) for _, _, left, right in sorted(ranked)]


def tokenizer_json(table, legacy):
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    vocab = {p: i for i, (p, _, _) in enumerate(table)}
    tok = Tokenizer(BPE(vocab=vocab, merges=merges_by_score(table), unk_token="<unk>",
                        fuse_unk=True, byte_fallback=True))
    if legacy:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                     split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def write_gguf(path, table):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([p for p, _, _ in table])
    w.add_token_scores([s for _, s, _ in table])
    w.add_token_types([k for _, _, k in table])
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--austen-deb-dir", help="where r-cran-janeaustenr's .deb was extracted "
                    "into x/ (default: apt-get download it)")
    args = ap.parse_args()
    novels = austen_novels(args.austen_deb_dir)
    os.makedirs(DATA, exist_ok=True)
    sp = train(novels, os.path.join(DATA, "spm_austen"))
    table = pieces(sp)
    legacy = tokenizer_json(table, legacy=True)
    metaspace = tokenizer_json(table, legacy=False)
    legacy.save(os.path.join(DATA, "spm_legacy_tokenizer.json"))
    metaspace.save(os.path.join(DATA, "spm_metaspace_tokenizer.json"))
    write_gguf(os.path.join(DATA, "spm_austen.gguf"), table)

    samples = dict(handmade_samples())
    emma = novels[0]
    start = emma.index("CHAPTER I\n")
    samples["austen_emma"] = emma[start:start + 4000]
    samples["gpl3"] = open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()[9000:12000]
    samples["llama2_chat"] = SPECIAL
    samples["leading_spaces"] = "   three spaces, then\n\n  two after newlines "
    samples["empty"] = ""
    cases = []
    for name, text in samples.items():
        case = {"name": name, "text": text}
        for key, tok in (("legacy", legacy), ("metaspace", metaspace)):
            ids = tok.encode(text).ids
            case[key] = {"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)}
        if "<s>" not in text and "</s>" not in text:
            case["sentencepiece"] = [1] + sp.encode(text)
        cases.append(case)
    import sentencepiece
    import tokenizers
    write_json("spm_golden.json", {
        "made_by": "scripts/golden/make_sentencepiece_golden.py with sentencepiece "
                   f"{sentencepiece.__version__}, tokenizers {tokenizers.__version__}",
        "vocab_size": sp.get_piece_size(), "cases": cases}, compact=True)
    chat_golden(legacy)


if __name__ == "__main__":
    main()
