#!/usr/bin/env python3
"""test_tokenizer_pretok.py — an independent reference for the GPT-2 and
Llama 3 split patterns that lib/tok_hf.c implements by hand.

The C matcher walks the pattern's alternatives itself; this file instead
hands the patterns to Python's own regex engine (re), with \\p{L}, \\p{N}
and \\s spelled as explicit character classes built here from unicodedata
(re has no \\p{...}, and its \\s is str.isspace, not White_Space). So the
control flow (alternation order, backtracking, lookahead, {1,3}, (?i:))
comes from re, and only the class contents are shared knowledge.

  test_tokenizer_pretok.py gpt2|llama3 IN OUT   IN: strings, each a u32 LE
      byte length + UTF-8 bytes; OUT: one line per string, the byte offsets
      where chunks end (used by tests/test_tokenizer.c)
  test_tokenizer_pretok.py                      self-check on hand-split
      examples; prints "test_tokenizer_pretok: N passed, N failed"
"""
import re
import struct
import sys
import unicodedata

WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005" \
              "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def char_class(pred):
    out, start, prev = [], None, None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            inside = False
        else:
            inside = pred(unicodedata.category(chr(cp)))
        if inside and start is None:
            start = cp
        if not inside and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return "".join(re.escape(chr(a)) if a == b else re.escape(chr(a)) + "-" + re.escape(chr(b))
                   for a, b in out)


def patterns():
    L = char_class(lambda c: c[0] == "L")
    N = char_class(lambda c: c[0] == "N")
    S = "".join(re.escape(c) for c in WHITE_SPACE)
    gpt2 = (r"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+"
            .format(L=L, N=N, S=S))
    llama3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n{L}{N}]?[{L}]+|[{N}]{{1,3}}"
              r"| ?[^{S}{L}{N}]+[\r\n]*|[{S}]*[\r\n]+|[{S}]+(?![^{S}])|[{S}]+"
              .format(L=L, N=N, S=S))
    return {"gpt2": re.compile(gpt2), "llama3": re.compile(llama3)}


def split(rx, text):
    """Chunks as tokenizers' Split(Isolated) makes them: matches, and any
    unmatched gap between them as a chunk of its own."""
    out, pos = [], 0
    for m in rx.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        if m.end() > m.start():
            out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def ends(chunks):
    at, out = 0, []
    for c in chunks:
        at += len(c.encode("utf-8"))
        out.append(at)
    return out


def run_files(which, inp, outp):
    rx = patterns()[which]
    data = open(inp, "rb").read()
    pos, lines = 0, []
    while pos < len(data):
        n = struct.unpack_from("<I", data, pos)[0]
        text = data[pos + 4:pos + 4 + n].decode("utf-8")
        pos += 4 + n
        lines.append(" ".join(str(e) for e in ends(split(rx, text))))
    with open(outp, "w") as f:
        f.write("\n".join(lines) + "\n")


def self_check():
    rx = patterns()
    cases = [
        ("gpt2", "Hello world", ["Hello", " world"]),
        ("gpt2", "I'll  go!!", ["I", "'ll", " ", " go", "!!"]),
        ("gpt2", "x   \n", ["x", "   \n"]),
        ("gpt2", "12345 abc", ["12345", " abc"]),
        ("gpt2", "DON'T", ["DON", "'", "T"]),
        ("llama3", "DON'T", ["DON", "'T"]),
        ("llama3", "12345", ["123", "45"]),
        ("llama3", "!Hello", ["!Hello"]),
        ("llama3", "a \n\n b", ["a", " \n\n", " b"]),
        ("llama3", "x  \t", ["x", "  \t"]),
        ("llama3", "x  y", ["x", " ", " y"]),
        ("llama3", "ok?!\n\nNext", ["ok", "?!\n\n", "Next"]),
        ("llama3", "日本語 ok", ["日本語", " ok"]),
        ("llama3", "'ſ", ["'ſ"]),
    ]
    passed = failed = 0
    for which, text, want in cases:
        got = split(rx[which], text)
        if got == want:
            passed += 1
        else:
            failed += 1
            print("%s %r: got %r want %r" % (which, text, got, want), file=sys.stderr)
    print("test_tokenizer_pretok: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 4:
        run_files(sys.argv[1], sys.argv[2], sys.argv[3])
    else:
        sys.exit(self_check())
