#!/usr/bin/env python3
"""build_demo_input.py: builds inputs/demo.jsonl from real long English prose.

The text is Jane Austen's six novels (public domain) as Debian's r-cran-janeaustenr package
ships them, read without R: the package's data/Rdata.rdb holds records of a 4-byte big-endian
length followed by a zlib stream of R's XDR serialization, in which each novel is a character
vector (STRSXP) of text lines (CHARSXP). This script walks that serialization just far enough to
collect the character vectors, then writes a JSONL input mixing long documents (chapters, tens of
thousands of characters) with short prompts.

    python3 scripts/build_demo_input.py            # downloads the .deb with apt-get download
    python3 scripts/build_demo_input.py --deb FILE  # or uses a given .deb

The output is deterministic for a given package version (1.0.0-1 in Debian 12).
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

STRSXP, CHARSXP = 16, 9


def xdr_string_vectors(blob):
    """Yields every character vector (list of str) found in an R XDR serialization.

    Each STRSXP is (flags, length) then `length` CHARSXPs of (flags, nbytes, bytes); nbytes -1 is
    NA. A position that does not parse as a whole vector is skipped a byte at a time (strings
    leave the stream unaligned)."""
    n = len(blob)
    i = 0
    while i + 8 <= n:
        flags, length = struct.unpack_from(">ii", blob, i)
        if flags & 0xFF == STRSXP and 0 < length < 10_000_000:
            j, lines = i + 8, []
            for _ in range(length):
                if j + 8 > n:
                    break
                cflags, clen = struct.unpack_from(">ii", blob, j)
                if cflags & 0xFF != CHARSXP:
                    break
                if clen == -1:  # NA_STRING
                    lines.append("")
                    j += 8
                    continue
                if clen < 0 or j + 8 + clen > n:
                    break
                lines.append(blob[j + 8 : j + 8 + clen].decode("utf-8", "replace"))
                j += 8 + clen
            if len(lines) == length:
                yield lines
                i = j
                continue
        i += 1


def read_rdb(path):
    """Each record: 4-byte big-endian uncompressed size, then a zlib stream (back to back)."""
    data = open(path, "rb").read()
    pos, vectors = 0, []
    while pos + 4 < len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        inflater = zlib.decompressobj()
        blob = inflater.decompress(data[pos + 4 :])
        if len(blob) != size:
            sys.exit(f"build_demo_input: {path}: record at byte {pos} has a bad size")
        pos = len(data) - len(inflater.unused_data)
        vectors.extend(v for v in xdr_string_vectors(blob) if len(v) > 1000)
    return vectors


def chapters(lines):
    """Splits a novel's lines into (title, text) chapters."""
    out, title, buf = [], None, []
    for line in lines:
        if re.match(r"^(CHAPTER|Chapter) [0-9IVXLC]+\.?\s*$", line.strip()):
            if title and buf:
                out.append((title, "\n".join(buf).strip()))
            title, buf = line.strip(), []
        elif title:
            buf.append(line)
    if title and buf:
        out.append((title, "\n".join(buf).strip()))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deb", help="r-cran-janeaustenr .deb (default: apt-get download it)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "inputs",
                                                  "demo.jsonl"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        deb = args.deb
        if not deb:
            subprocess.run(["apt-get", "download", "r-cran-janeaustenr"], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
            deb = os.path.join(tmp, [f for f in os.listdir(tmp) if f.endswith(".deb")][0])
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
        rdb = os.path.join(tmp, "x/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb")
        novels = read_rdb(rdb)
    if not novels:
        sys.exit("build_demo_input: no text found in " + rdb)
    first = {lines[0].strip() or lines[1].strip(): lines for lines in novels}
    print("build_demo_input: novels found:", ", ".join(sorted(first)), file=sys.stderr)

    docs = []
    # Long documents: whole chapters of increasing length, each followed by an instruction.
    pride = next((v for k, v in first.items() if "PRIDE" in k.upper()), novels[0])
    chaps = chapters(pride)
    picked = sorted((c for c in chaps[:20] if len(c[1]) < 26000), key=lambda c: len(c[1]))
    for title, text in (picked[-1], picked[len(picked) // 2], picked[0]):
        docs.append({"id": f"pride-chapter-{title.split()[-1].strip('.').lower()}",
                     "prompt": f"{text}\n\nSummarize the chapter above in two sentences.",
                     "max_new_tokens": 48})
    persuasion = next((v for k, v in first.items() if "PERSUASION" in k.upper()), novels[-1])
    # NOTE: the default model (SmolLM2-135M) has 8192 positions; about 4.3 characters per token
    # keeps this opening near 6K tokens, the longest document of the set.
    long_text = "\n".join(persuasion)[:26000].rsplit("\n", 1)[0].strip()
    docs.append({"id": "persuasion-opening", "prompt": long_text +
                 "\n\nWho is Sir Walter Elliot, according to the text above?", "max_new_tokens": 48})
    # Short chat requests mixed in (the default model is an instruct model: chat messages are
    # rendered with its template, plain prompts are continued as text).
    for i, q in enumerate(["What is the capital of France?",
                           "Write one sentence about the sea.",
                           "List three colours.",
                           "Explain what a library is in one sentence."]):
        docs.append({"id": f"short-{i}", "messages": [{"role": "user", "content": q}],
                     "max_new_tokens": 32})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    sizes = ", ".join(f"{d['id']}: {len(d.get('prompt') or d['messages'][0]['content'])} chars"
                      for d in docs)
    print(f"build_demo_input: wrote {len(docs)} documents to {args.out} ({sizes})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
