"Meta's splitting of long inputs: our regex version equals Meta's character loop; long inputs encode in chunks."
import re
import sys
from functools import cache

from hypothesis import given, settings, strategies as st

from llama3_nb.tokenizer import TIKTOKEN_MAX_ENCODE_CHARS, default_tokenizer, split_long_runs

def meta_split(s: str, max_len: int) -> list[str]:
    "Meta's `_split_whitespaces_or_nonwhitespaces` (llama/tokenizer.py), restated as the oracle."
    out, run, is_space, start = [], 0, s[0].isspace() if s else False, 0
    for i, c in enumerate(s):
        if is_space ^ c.isspace(): run, is_space = 1, c.isspace()
        else:
            run += 1
            if run > max_len: out.append(s[start:i]); start, run = i, 1
    return out + [s[start:]]

def test_re_whitespace_is_str_isspace():
    assert all(bool(re.match(r"\s", chr(c))) == chr(c).isspace() for c in range(sys.maxunicode + 1))

@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from("ab \n\t\u3000\x1c\u00a0é😀"), max_size=60), st.integers(1, 6))
def test_split_equals_metas_loop(s, max_len):
    assert split_long_runs(s, max_len) == meta_split(s, max_len)

@settings(max_examples=10, deadline=None)
@given(st.sampled_from("a \n.中"), st.integers(25_001, 80_000), st.text(max_size=3))
def test_split_equals_metas_loop_at_real_length(c, n, tail):
    s = tail + c * n + tail
    assert split_long_runs(s) == meta_split(s, 25_000)

@cache
def tok():
    return default_tokenizer(512, n_chars=100_000)

def test_long_input_is_encoded_in_chunks_like_meta():
    s = ("Llama three reads long books. " * 20_000)[:TIKTOKEN_MAX_ENCODE_CHARS + 1234]
    ids = tok().encode(s, bos=False, eos=False)
    chunks = [s[:TIKTOKEN_MAX_ENCODE_CHARS], s[TIKTOKEN_MAX_ENCODE_CHARS:]]
    assert ids == [i for c in chunks for i in tok().model.encode_ordinary(c)]
    assert tok().decode(ids) == s
