"Evaluation: instruction checkers on generated text, pass@k against subset enumeration, CI coverage, decontamination, bad JSONL."
import itertools, json, math
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from llama3_nb.evaluation import (INSTRUCTIONS, NgramIndex, accuracy_ci, contamination, follows, ifeval_examples,
                                  ifeval_scores, loose_variants, pass_at_k, read_benchmark_jsonl, token_coverage, wilson_ci)
from llama3_nb.tokenizer import default_tokenizer
from llama3_nb.cli import main

def eval_main(argv): return main(["eval", *argv])       # the `llama3_nb eval` command

check = lambda name, s, **kw: INSTRUCTIONS[name][1](s, **kw)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
words = st.lists(st.text("abcdefghij", min_size=1, max_size=6), min_size=1, max_size=12)

@pytest.fixture(scope="module")
def tok(): return default_tokenizer(2048)

@given(text)
def test_case_checkers(s):
    has_cased = s.lower() != s.upper()
    assert check("lowercase", s.lower()) == (s.lower() != s.lower().upper())   # lowercasing passes iff a cased letter remains
    assert check("uppercase", s.upper()) == (s.upper() != s.upper().lower())
    if has_cased and s == s.lower(): assert not check("uppercase", s)

@given(words, st.integers(1, 10))
def test_max_words(ws, n):
    assert check("max_words", " ".join(ws), n=n) == (len(ws) <= n)
    assert check("max_words", "\n ".join(ws[:n]), n=n)                        # any whitespace separates words

@given(words, st.sampled_from(["indeed", "clearly", "answer"]), st.integers(0, 12))
def test_keyword(ws, k, at):
    assert not check("keyword", " ".join(ws), k=k)                              # letters a-j never spell a keyword
    assert not check("keyword", " ".join(ws) + f" {k}x", k=k)                   # a longer word is not the keyword
    assert check("keyword", " ".join(ws[:at] + [k.upper() + ","] + ws[at:]), k=k)

@given(text, st.sampled_from(["That is all.", "Hope this helps."]))
def test_end_with_and_commas_and_quotes(s, p):
    assert check("end_with", f"{s} {p}  ", p=p)
    assert check("no_commas", s.replace(",", "")) and not check("no_commas", s + ",")
    assert check("quoted", f'"{s}"') and (check("quoted", s) == (len(s.strip()) > 1 and s.strip()[0] == s.strip()[-1] == '"'))

@given(st.lists(st.text("abc xyz", min_size=1, max_size=10).filter(lambda t: t.strip()), min_size=1, max_size=6), st.integers(1, 6))
def test_bullets(items, n):
    reply = "\n".join(f"* {t.strip()}" for t in items)
    assert check("bullets", reply, n=n) == (len(items) == n)
    assert check("bullets", "Sure:\n" + reply, n=len(items))                  # a lead-in line does not count

@given(text)
def test_loose_never_stricter(s):
    ex = dict(instructions=[["lowercase", {}], ["no_commas", {}], ["max_words", dict(n=3)]])
    assert all(l or not t for t, l in zip(follows(ex, s), follows(ex, s, loose=True)))
    assert s in loose_variants(s)

def test_ifeval_examples_and_scores():
    exs = ifeval_examples(60, seed=3)
    assert len(exs) == 60 and all(1 <= len(e["instructions"]) <= 2 for e in exs)
    sc = ifeval_scores(exs, ["" for _ in exs])                                 # an empty reply follows nothing
    assert sc == dict(prompt_strict=0.0, instruction_strict=0.0, prompt_loose=0.0, instruction_loose=0.0)

def pass_at_k_naive(n, c, k):
    subs = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subs) / len(subs)

@given(st.integers(1, 10).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_enumeration(nck):
    n, c, k = nck
    assert math.isclose(pass_at_k(n, c, k), pass_at_k_naive(n, c, k), abs_tol=1e-12)

def test_pass_at_k_bad_input():
    with pytest.raises(ValueError): pass_at_k(3, 4, 1)
    with pytest.raises(ValueError): pass_at_k(3, 1, 4)

def test_ci_coverage_simulated():
    "Seeded simulation: the normal interval covers ~95% at n=200, p=0.5; Wilson stays >= 90% near p=0.02 at n=50."
    rng = np.random.default_rng(0)
    cover = lambda ci, p, n: np.mean([ci(int(k), n)[1] <= p <= ci(int(k), n)[2] for k in rng.binomial(n, p, 20_000)])
    assert 0.93 < cover(accuracy_ci, 0.5, 200) < 0.96
    assert cover(accuracy_ci, 0.02, 50) < 0.75 and cover(wilson_ci, 0.02, 50) > 0.9
    s, lo, hi = accuracy_ci(30, 100)
    assert math.isclose(hi - s, 1.96 * math.sqrt(0.3 * 0.7 / 100)) and math.isclose(s - lo, hi - s)

def test_decontamination_exact_copy_and_disjoint(tok):
    train = "The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat by the door."
    other = "Completely unrelated sentence about rivers, mountains and seventeen purple umbrellas in Lisbon."
    enc = lambda t: tok.encode(t, bos=False, eos=False)
    cov, flag = contamination([train, other], NgramIndex.build([enc(train)]), tok)          # a training doc equal to the item
    assert cov[0] == 1.0 and flag == [True, False] and cov[1] < 0.2
    cov, flag = contamination([train, other], NgramIndex.build([enc("Some preface. " + train + " Some epilogue.")]), tok)
    n = len(enc(train))                        # embedded: only the first and last token may tokenize differently ("The" vs " The")
    assert cov[0] >= (n - 2) / n and flag == [True, False] and cov[1] < 0.2

@settings(max_examples=50)
@given(st.lists(st.integers(0, 3), max_size=40), st.lists(st.lists(st.integers(0, 3), max_size=30), max_size=3), st.sampled_from([2, 3, 8]))
def test_coverage_matches_naive(q, docs, n):
    grams = {tuple(d[i:i + n]) for d in docs for i in range(len(d) - n + 1)}
    cov = [False] * len(q)
    for i in range(len(q) - n + 1):
        if tuple(q[i:i + n]) in grams: cov[i:i + n] = [True] * n
    want = sum(cov) / len(q) if len(q) >= n else 0.0
    assert math.isclose(token_coverage(q, NgramIndex.build(docs, n)), want, abs_tol=1e-12)

GOOD = {"prompt": "What is 2 + 2?", "answer": "4", "grader": "number"}

@pytest.mark.parametrize("line, msg", [
    ('{"prompt": "x", "answer": "y"}', "'grader' must be a string"),
    ('{"prompt": "x", "answer": "y", "grader": "bleu"}', "unknown grader 'bleu'"),
    ('{"prompt": 3, "answer": "y", "grader": "exact"}', "'prompt' must be a string, got int"),
    ('{"prompt": "x", "grader": "exact"}', "'answer' must be a string, got NoneType"),
    ('{"prompt": "x", "answer": "y", "grader": "exact", "system": 1}', "'system' must be a string"),
    ('{"prompt": ', "not valid JSON"),
    ('[1, 2]', "expected a JSON object, got list"),
])
def test_bad_jsonl_names_the_line(tmp_path, line, msg):
    p = tmp_path / "bench.jsonl"
    p.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")                        # blank line 2: the bad one is line 3
    with pytest.raises(ValueError) as e: read_benchmark_jsonl(p)
    assert "bench.jsonl:3: " in str(e.value) and msg in str(e.value)

def test_empty_jsonl(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no examples"): read_benchmark_jsonl(tmp_path / "e.jsonl")

def test_eval_main_bad_input(tmp_path, capsys):
    assert eval_main([str(tmp_path / "nowhere")]) == 2
    assert "no checkpoint directory" in capsys.readouterr().err
    (tmp_path / "ck").mkdir()
    assert eval_main([str(tmp_path / "ck")]) == 2
    assert "no tokenizer at" in capsys.readouterr().err

def test_eval_main_end_to_end(tmp_path, tok, capsys):
    import torch
    from llama3_nb.config import ModelArgs
    from llama3_nb.model import Transformer, init_weights
    from llama3_nb.checkpoints import save_meta_checkpoint
    torch.manual_seed(0)
    ck = tmp_path / "ck"; save_meta_checkpoint(init_weights(Transformer(ModelArgs.mini(vocab_size=tok.n_words, dim=64, n_heads=4, max_seq_len=256))), ck)
    tok.save(ck / "tokenizer.model")
    (tmp_path / "b.jsonl").write_text(json.dumps(GOOD) + "\n")
    out = tmp_path / "r.json"
    assert eval_main([str(ck), "--n", "6", "--data", str(tmp_path / "b.jsonl"), "--samples", "2", "--k", "1,2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert sorted(res) == ["b", "ifeval", "tasks"] and res["tasks"]["n"] == 6 and res["ifeval"]["n"] == 6
    for r in res.values():
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"] and 0 <= r["pass@1"] <= r["pass@2"] <= 1
    assert "tasks" in capsys.readouterr().out
    assert eval_main([str(ck), "--n", "0"]) == 2 and "at least 1 example" in capsys.readouterr().err
