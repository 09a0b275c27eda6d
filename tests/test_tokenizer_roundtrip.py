"Property-based tests of llama3_nb.tokenizer: round trips and agreement with the pure-Python oracle."
from functools import cache

from hypothesis import assume, example, given, settings, strategies as st

from llama3_nb.tokenizer import (bpe_encode_py, default_tokenizer, pretokenize, pretokenize_py, special_token_names,
                                  train_bpe)

@cache
def tok():
    return default_tokenizer(1024, n_chars=200_000)

def roundtrip(s: str) -> bool:
    return tok().decode(tok().encode(s, bos=False, eos=False)) == s

emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
control = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"])
# Characters this Python's Unicode database (14.0 on 3.11) knows. tiktoken's Rust regex, the `regex` module and
# `unicodedata` each carry their own Unicode version, so on a code point one of them calls unassigned they may split
# differently (see `test_unassigned_code_points_round_trip`); id-equality tests draw from the characters all know.
known_chars = st.characters(exclude_categories=["Cn", "Cs"])
joiners = st.sampled_from(["\u200d", "\ufe0f", "\u0301", "\U0001F3FD", "\r\n", "'ll", "1234"])

@settings(max_examples=300, deadline=None)
@given(st.text())
def test_roundtrip_arbitrary_unicode(s):
    assert roundtrip(s)

@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(emoji, cjk, control, joiners, st.characters()), max_size=80).map("".join))
def test_roundtrip_emoji_cjk_control(s):
    assert roundtrip(s)

@settings(max_examples=8, deadline=None)
@given(st.sampled_from(["a", " ", "\n", "😀", "7", "ä", "\u3000", "中", ".", "\t "]), st.integers(25_000, 60_000), st.text(max_size=5))
def test_roundtrip_very_long_runs(c, n, tail):
    s = c * (n // len(c)) + tail
    ids = tok().encode(s, bos=True, eos=True)
    assert ids[0] == tok().bos_id and ids[-1] == tok().eos_id
    assert tok().decode(ids[1:-1]) == s

def test_roundtrip_longer_than_a_chunk():
    s = ("The quick brown fox. " * 25_000)[:450_001]       # > 400,000 chars: two chunks
    assert roundtrip(s)

def test_lone_surrogate_becomes_replacement_char():
    # not a Unicode scalar value, so it cannot be UTF-8 encoded; tiktoken substitutes U+FFFD
    assert tok().decode(tok().encode("a\ud800b", bos=False, eos=False)) == "a\ufffdb"

@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(known_chars, emoji, cjk, joiners), max_size=120).map("".join))
def test_tiktoken_equals_pure_python(s):
    assert tok().encode(s, bos=False, eos=False) == bpe_encode_py(tok().mergeable_ranks, s)

@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=10), st.sampled_from(special_token_names())), max_size=8).map("".join))
def test_special_strings_in_text_stay_text(s):
    ids = tok().encode(s, bos=False, eos=False)
    assert all(i < len(tok().mergeable_ranks) for i in ids)   # no special id from user text
    assert tok().decode(ids) == s

@settings(max_examples=100, deadline=None)
@given(st.text(st.sampled_from("ab c\n'1é"), min_size=50, max_size=400), st.integers(0, 40))
def test_fast_trainer_equals_tiktoken_reference_trainer(text, n_merges):
    from tiktoken._educational import bpe_train
    from llama3_nb.tokenizer import PAT_STR
    ours = train_bpe(text, 256 + n_merges)
    assume(len(ours) == 256 + n_merges)       # tiktoken's trainer fails when the text runs out of pairs
    assert ours == bpe_train(text, 256 + n_merges, PAT_STR, visualise=None)

@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(known_chars, emoji, cjk, joiners, st.sampled_from(["ab", "abc", "bc", " the", "  "])),
                max_size=150).map("".join), st.integers(256, 330))
def test_any_trained_vocabulary_is_valid_and_round_trips(text, vocab_size):
    from llama3_nb.tokenizer import Tokenizer
    t = Tokenizer.train(text, vocab_size)          # validates: unique bytes, ranks 0..n-1, all 256 bytes
    assert len(t.mergeable_ranks) <= vocab_size
    ids = t.encode(text, bos=False, eos=False)
    assert t.decode(ids) == text
    assert ids == bpe_encode_py(t.mergeable_ranks, text)

@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20), st.integers(256, 300))
@example("A\U0003d000", 257)   # unassigned in Python 3.11's tables and tiktoken's, a letter to regex 2026.11 (found in CI)
def test_unassigned_code_points_round_trip(text, vocab_size):
    "Whatever the Unicode versions disagree on, a trained tokenizer still decodes its own encoding to the text."
    from llama3_nb.tokenizer import Tokenizer
    t = Tokenizer.train(text, vocab_size)
    assert t.decode(t.encode(text, bos=False, eos=False)) == text

@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.characters(categories=["Cs"]), st.characters(), emoji), max_size=40).map("".join))
def test_surrogates_are_replaced_like_tiktoken(s):
    # Python strings may hold lone surrogates; both encoders first turn them into U+FFFD (and join valid pairs)
    ids = tok().encode(s, bos=False, eos=False)
    assert ids == bpe_encode_py(tok().mergeable_ranks, s)
    assert tok().decode(ids) == s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

contraction_bits = st.sampled_from(["'", "'s", "'S", "'\u017f", "'re", "'VE", "'lL", "'d", "'M", "'t", "ab", " ", "  ", "\t", "\r\n",
                                    "\x1c", "\x85", "\xa0", "\u2028", "\u3000", "a", "1234", "!", "\u0663"])

@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(contraction_bits, known_chars), max_size=40).map("".join))
def test_pretokenize_py_equals_the_regex(s):
    "The plain-Python scanner splits exactly as Llama 3's regex does, on characters Python's Unicode tables know."
    assert pretokenize_py(s) == pretokenize(s)
