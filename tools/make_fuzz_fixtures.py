"""Writes the hand-made hostile inputs of Tests/Fixtures/fuzz/<harness>/ (docs/security.md#fuzzing).

Every file there is replayed through `backdrop-fuzz <harness>` by `make test`: a parser may refuse
it, never crash on it. Crashers that `make fuzz` finds are added next to these, named by libFuzzer.
Usage: python3 tools/make_fuzz_fixtures.py   (plain Python 3, no packages)
"""
import os

base = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "fuzz")


def write(harness, name, data):
    os.makedirs(os.path.join(base, harness), exist_ok=True)
    with open(os.path.join(base, harness, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# YAML: 10,000 nested flow sequences (overflowed the recursive tree builder's stack), nine levels of
# ten aliases (10^9 nodes once expanded), and a repeated key (YAML forbids it).
write("yaml-config", "deep-flow-nesting.yaml", "model: " + "[" * 10000 + "]" * 10000 + "\n")
laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
for level in range(1, 10):
    laughs += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]\n"
write("yaml-config", "billion-laughs.yaml", laughs)
write("yaml-config", "duplicate-key.yaml", "model: {base: a}\nmodel: {base: b}\ndataset: {root: d}\n")

# Pickles: 20,000 nested lists (EMPTY_LIST × n, APPEND × n−1), and 40 lists that each hold the
# previous one twice through the memo (2^40 values if expanded naively).
write("pickle", "deep-lists.pkl", b"\x80\x02" + b"]" * 20000 + b"a" * 19999 + b".")
shared = b"\x80\x02]q\x00(K\x01K\x02e"
for i in range(1, 40):
    shared += b"]q" + bytes([i]) + b"(h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"e"
write("pickle", "shared-expansion.pkl", shared + b".")
