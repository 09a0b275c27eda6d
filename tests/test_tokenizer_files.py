"Bad input to llama3_nb.tokenizer: malformed tokenizer.model files, bad ids, bad arguments."
import base64
import re
from functools import cache

import pytest
from tiktoken.load import load_tiktoken_bpe

from llama3_nb.tokenizer import Tokenizer, corpus_text, default_tokenizer, load_ranks, save_ranks, train_bpe

@cache
def tok():
    return default_tokenizer(512, n_chars=100_000)

@pytest.fixture
def model_file(tmp_path):
    return tok().save(tmp_path / "tokenizer.model")

def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()

def test_save_is_the_real_format(model_file):
    lines = model_file.read_text().splitlines()
    assert lines[:2] == [f"{b64(bytes([0]))} 0", f"{b64(bytes([1]))} 1"]
    assert load_tiktoken_bpe(str(model_file)) == tok().mergeable_ranks == load_ranks(model_file)
    again = Tokenizer.from_file(model_file)
    s = "Round trip through tokenizer.model <|eot_id|>"
    assert again.encode(s, bos=True, eos=True) == tok().encode(s, bos=True, eos=True)
    assert (again.n_words, again.special_tokens) == (tok().n_words, tok().special_tokens)

@pytest.mark.parametrize("line, message", [
    ("@@@@ 3", "line 4: bad base64 token b'@@@@'"),
    ("QUJ 3", "line 4: bad base64 token"),                # bad padding
    ("QUJD 3 9", "line 4: expected '<base64 token> <rank>', got 3 fields"),
    ("QUJD", "line 4: expected '<base64 token> <rank>', got 1 fields"),
    ("QUJD three", "line 4: rank b'three' is not a non-negative integer"),
    ("QUJD -3", "line 4: rank b'-3' is not a non-negative integer"),
    ("QUJD 2", "line 4: duplicate rank 2"),
    ("QUJD 5", "line 4: gap in ranks, 5 follows 2"),
    (f"{b64(bytes([0]))} 3", "line 4: token b'\\x00' already has rank 0"),
])
def test_malformed_file_names_the_line(model_file, line, message):
    lines = model_file.read_text().splitlines()
    model_file.write_text("\n".join([*lines[:3], line, *lines[4:]]) + "\n")
    with pytest.raises(ValueError, match=re.escape(message)):
        Tokenizer.from_file(model_file)

def test_blank_lines_are_skipped_but_counted(model_file):
    lines = model_file.read_text().splitlines()
    model_file.write_text("\n".join([*lines[:3], "", "QUJD 9"]))
    with pytest.raises(ValueError, match="line 5: gap in ranks"):
        load_ranks(model_file)

def test_ranks_must_be_complete_and_contiguous():
    ranks = dict(tok().mergeable_ranks)
    with pytest.raises(ValueError, match="0, 1, ..., n-1"):
        Tokenizer({**ranks, b"zzzz-new": len(ranks) + 3})
    del ranks[b"A"]
    with pytest.raises(ValueError):
        Tokenizer(ranks)
    with pytest.raises(ValueError, match="no token for byte 7"):
        Tokenizer({bytes([b]): b - (b > 7) for b in range(256) if b != 7})

@pytest.mark.parametrize("bad", [-1, 512 + 256, 10**9])
def test_decode_out_of_range_names_the_id(bad):
    with pytest.raises(ValueError, match=f"token id {bad} is out of range"):
        tok().decode([1, 2, bad, 3])

def test_decode_accepts_int_like_and_specials():
    assert tok().decode([]) == ""
    assert tok().decode([tok().eot_id]) == "<|eot_id|>"
    assert tok().decode(range(72, 74)) == "HI"

def test_encode_arguments():
    with pytest.raises(TypeError, match="takes a str"):
        tok().encode(b"bytes", bos=False, eos=False)
    with pytest.raises(TypeError):
        tok().encode("bos and eos are required keywords, as in Meta's code")
    with pytest.raises(ValueError):   # tiktoken's check, on request
        tok().encode("x <|eot_id|>", bos=False, eos=False, disallowed_special="all")
    assert tok().encode("<|eot_id|>", bos=False, eos=False, allowed_special="all") == [tok().eot_id]

def test_ids_and_stop_tokens():
    t = tok()
    assert (t.n_words, t.bos_id, t.eos_id, t.pad_id, t.eom_id, t.eot_id, t.python_tag_id) == (768, 512, 513, 516, 520, 521, 522)
    assert t.stop_tokens == [520, 521]
    assert sorted(t.special_tokens.values()) == list(range(512, 768))

def test_train_arguments_and_determinism():
    with pytest.raises(ValueError, match="at least 256"):
        train_bpe("text", 100)
    assert len(train_bpe("", 300)) == 256          # no pairs: only the bytes
    text = corpus_text("train", 30_000, kind="prose")
    assert train_bpe(text, 400) == train_bpe([text], 400) == Tokenizer.train(text, 400).mergeable_ranks

def test_corpus_arguments_and_split():
    with pytest.raises(ValueError, match="split"):
        corpus_text("test")
    with pytest.raises(ValueError, match="kind"):
        corpus_text("train", kind="poetry")
    held, train = corpus_text("heldout", 50_000, kind="prose"), corpus_text("train", 700_000, kind="prose")
    assert held[:500] not in train and held[-500:] not in train
    assert corpus_text("train", 10_000) == corpus_text("train", 10_000)

def test_default_tokenizer_cache(tmp_path):
    a = default_tokenizer(300, cache_dir=tmp_path, n_chars=20_000)
    (f,) = tmp_path.iterdir()
    assert f.name.startswith("stdlib-300-") and load_ranks(f) == a.mergeable_ranks
    assert default_tokenizer(300, cache_dir=tmp_path, n_chars=20_000).mergeable_ranks == a.mergeable_ranks
