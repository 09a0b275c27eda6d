"DPO: bad preference JSONL, properties of the loss, the eot mask, NaN handling and the `llama3_nb dpo` command end to end."
import json, math
import pytest
import torch
from hypothesis import given, settings, strategies as st
from llama3_nb.dpo import (DPOTrainConfig, chosen_nll, collate_pairs, dpo_loss, dpo_train, make_pairs,
                           pair_logps, read_pairs_jsonl)
from llama3_nb.tasks import split_of, task_examples
from llama3_nb.config import write_jsonl
from llama3_nb.tokenizer import ChatFormat, default_tokenizer
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.pretraining import NonFiniteLoss
from llama3_nb.checkpoints import save_meta_checkpoint, save_hf_checkpoint
from llama3_nb.cli import main

def dpo_main(argv): return main(["dpo", *argv])       # the `llama3_nb dpo` command

@pytest.fixture(scope="module")
def tok(): return default_tokenizer(2048)

def _msg(role, content): return {"role": role, "content": content}
GOOD = {"prompt": [_msg("user", "What is 2 + 3?")], "chosen": [_msg("assistant", "5")], "rejected": [_msg("assistant", "6")]}

@pytest.mark.parametrize("line, msg", [
    ('{"prompt": [], "chosen": [], "rejected": []}', "'prompt' must be a non-empty list"),
    ('{"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "assistant", "content": "y"}]}', "missing 'rejected'"),
    ('{"prompt": [{"role": "user", "content": "x"}], "chosen": {"role": "assistant", "content": "y"}, "rejected": []}',
     "'chosen' must be a list of one assistant message"),
    ('{"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "user", "content": "y"}], "rejected": [{"role": "assistant", "content": "z"}]}',
     "'chosen' must be a list of one assistant message"),
    ('{"prompt": [{"role": "bot", "content": "x"}], "chosen": [{"role": "assistant", "content": "y"}], "rejected": [{"role": "assistant", "content": "z"}]}',
     "message 0 has unknown role 'bot'"),
    ('{"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "assistant", "content": 5}], "rejected": [{"role": "assistant", "content": "z"}]}',
     "message 1 content must be a string"),
    ('{"prompt": [{"role": "assistant", "content": "x"}], "chosen": [{"role": "assistant", "content": "y"}], "rejected": [{"role": "assistant", "content": "z"}]}',
     "must not end with an assistant message"),
    ('{"prompt": [', "not valid JSON"),
    ('[1, 2]', "expected an object"),
])
def test_bad_jsonl_names_the_line(tmp_path, line, msg):
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")          # a blank line 2: the bad one is line 3
    with pytest.raises(ValueError) as e: read_pairs_jsonl(p)
    assert "pairs.jsonl:3" in str(e.value) and msg in str(e.value)

def test_empty_and_roundtrip(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no pairs"): read_pairs_jsonl(tmp_path / "e.jsonl")
    assert read_pairs_jsonl(write_jsonl([GOOD, GOOD], tmp_path / "ok.jsonl")) == [GOOD, GOOD]

logps = st.lists(st.floats(-60, 0), min_size=4, max_size=4)

@settings(max_examples=60, deadline=None)
@given(pc=logps, pr=logps, beta=st.floats(0.01, 2.0), nll=st.floats(0, 10), w=st.floats(0, 1))
def test_policy_equal_reference_gives_log2_plus_nll(pc, pr, beta, nll, w):
    pc, pr = torch.tensor(pc, dtype=torch.float64), torch.tensor(pr, dtype=torch.float64)
    loss, s = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta, torch.tensor(nll, dtype=torch.float64), w)
    assert math.isclose(loss.item(), math.log(2) + w * nll, rel_tol=1e-12, abs_tol=1e-12)
    assert s["margin"].item() == 0 and s["reward_acc"].item() == 0      # ties are not counted as correct

@settings(max_examples=60, deadline=None)
@given(pc=logps, pr=logps, rc=logps, rr=logps, beta=st.floats(0.01, 2.0))
def test_gradient_pushes_chosen_up_rejected_down(pc, pr, rc, rr, beta):
    pc, pr = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (pc, pr))
    dpo_loss(pc, pr, torch.tensor(rc, dtype=torch.float64), torch.tensor(rr, dtype=torch.float64), beta)[0].backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()                  # a descent step raises chosen, lowers rejected
    torch.testing.assert_close(pc.grad, -pr.grad)

@settings(max_examples=60, deadline=None)
@given(pc=logps, pr=logps, rc=logps, rr=logps, beta=st.floats(0.01, 2.0), c=st.floats(0.1, 10.0))
def test_beta_scales_the_log_ratios(pc, pr, rc, rr, beta, c):
    t = lambda v: torch.tensor(v, dtype=torch.float64)
    a, sa = dpo_loss(t(pc), t(pr), t(rc), t(rr), beta)
    b, sb = dpo_loss(c * t(pc), c * t(pr), c * t(rc), c * t(rr), beta / c)   # only beta * (log-ratio difference) matters
    assert math.isclose(a.item(), b.item(), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(sa["margin"].item(), sb["margin"].item(), rel_tol=1e-9, abs_tol=1e-12)

def test_larger_beta_penalises_a_wrong_ordering_more():
    pc, pr, z = torch.tensor([-10.0]), torch.tensor([-5.0]), torch.zeros(1)   # policy prefers the rejected reply
    assert dpo_loss(pc, pr, z, z, 0.5)[0] > dpo_loss(pc, pr, z, z, 0.1)[0] > math.log(2)

def test_eot_mask_changes_one_token_per_row(tok):
    cf = ChatFormat(tok)
    pairs = [GOOD, dict(GOOD, rejected=[_msg("assistant", "six, I think")])]
    x, m1 = collate_pairs(pairs, cf, True, tok.eos_id)
    _, m0 = collate_pairs(pairs, cf, False, tok.eos_id)
    assert ((m0 - m1) == 1).sum(1).tolist() == [1] * 4 and set(x[m0 != m1].tolist()) == {tok.eot_id}
    assert (m1 <= m0).all() and not (x[m1.bool()] == tok.eot_id).any()
    per_tok = torch.randn(4, x.shape[1] - 1)
    assert torch.isclose(chosen_nll(per_tok[:2], m1[:2, 1:]), -per_tok[:2][m1[:2, 1:].bool()].mean())

def test_make_pairs_counts_the_chosen_source():
    exs = task_examples(2, "train", tasks=["add"])
    a0, a1 = exs[0]["answer"], exs[1]["answer"]
    pairs, s = make_pairs(exs, [[a0, "1000"], ["1000", "999"]])
    assert s == dict(prompts=2, all_correct=0, chosen_sampled=1, chosen_reference=1, pairs=2)
    assert [p["chosen_source"] for p in pairs] == ["sample", "reference"] and pairs[1]["chosen"][0]["content"] == a1
    assert make_pairs(exs[:1], [[a0, a0]])[1]["all_correct"] == 1

def _tiny(tok, seed=0):
    torch.manual_seed(seed)
    return init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)))

def test_nan_names_the_step(tok):
    m = _tiny(tok)
    with torch.no_grad(): next(m.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match="at step 0"):
        dpo_train(m, tok, [GOOD], DPOTrainConfig(steps=2, warmup_steps=0, progress=False), torch.zeros(1, 2))

def test_training_separates_the_pair(tok):
    torch.set_num_threads(1)
    ref, pol = _tiny(tok), _tiny(tok)
    rows = dpo_train(pol, tok, [GOOD], DPOTrainConfig(steps=15, lr=3e-3, warmup_steps=0, progress=False), ref)
    assert math.isclose(rows[0]["dpo"], math.log(2), rel_tol=1e-5)
    d = pair_logps(pol, tok, [GOOD]) - pair_logps(ref, tok, [GOOD])
    assert d[0, 0] > d[0, 1] and rows[-1]["loss"] < rows[0]["loss"]

@pytest.mark.parametrize("fmt", ["meta", "hf"])
def test_dpo_main_end_to_end(tok, tmp_path, fmt):
    m, ck = _tiny(tok), tmp_path / "ck"
    (save_meta_checkpoint if fmt == "meta" else save_hf_checkpoint)(m, ck); tok.save(ck / "tokenizer.model")
    out = tmp_path / "out"                                   # on-policy pairs from the (random) model itself
    assert dpo_main([str(ck), str(out), "--steps", "2", "--n-train", "2", "--n-heldout", "1", "--k", "2", "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["format"] == fmt and s["n_pairs"] == s["pair_stats"]["pairs"] > 0 and s["config"]["nll_weight"] == 0.2
    assert set(s["heldout_correct"]["before"]) == set(s["heldout_correct"]["after"]) and "all" in s["heldout_correct"]["after"]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1] and all(math.isfinite(r["loss"]) for r in rows)
    assert (out / "tokenizer.model").is_file() and ((out / "params.json").is_file() if fmt == "meta" else (out / "config.json").is_file())

def _pair_on(side):
    "A pair whose prompt falls on `side` of the hash split."
    q = next(f"What is {i} + 1?" for i in range(100) if split_of(f"What is {i} + 1?") == side)
    return dict(GOOD, prompt=[_msg("user", q)])

def test_dpo_main_with_data(tok, tmp_path, capsys):
    m, ck = _tiny(tok), tmp_path / "ck"
    save_meta_checkpoint(m, ck); tok.save(ck / "tokenizer.model")
    data = write_jsonl([_pair_on("train")] * 3 + [_pair_on("heldout")], tmp_path / "pairs.jsonl")
    assert dpo_main([str(ck), str(tmp_path / "out"), "--data", str(data), "--steps", "1", "--quiet"]) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["n_pairs"] == 3 and s["pair_stats"] is None            # the held-out pair is never trained on
    only_held = write_jsonl([_pair_on("heldout")], tmp_path / "held.jsonl")
    assert dpo_main([str(ck), str(tmp_path / "o2"), "--data", str(only_held)]) == 2
    assert "no pair falls on the training side" in capsys.readouterr().err

def test_dpo_main_bad_input(tok, tmp_path, capsys):
    m, ck = _tiny(tok), tmp_path / "ck"
    save_meta_checkpoint(m, ck); tok.save(ck / "tokenizer.model")
    assert dpo_main([str(tmp_path / "nowhere"), str(tmp_path / "o")]) == 2
    assert "no checkpoint directory" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"; bad.write_text(json.dumps(GOOD) + "\n{oops\n")
    assert dpo_main([str(ck), str(tmp_path / "o"), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.jsonl:2: not valid JSON" in err
    (ck / "tokenizer.model").unlink()
    assert dpo_main([str(ck), str(tmp_path / "o")]) == 2 and "no tokenizer" in capsys.readouterr().err

def test_pairs_longer_than_the_context_are_cut(tok):
    "A reply that decodes to special-token names re-encodes much longer; log-probs stay defined within max_seq_len."
    torch.manual_seed(0)
    model = init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words, max_seq_len=64))).eval()
    long = {**GOOD, "rejected": [_msg("assistant", "<|reserved_special_token_154|> " * 40)]}
    x, m = collate_pairs([GOOD, long], ChatFormat(tok), pad_id=tok.eos_id, max_len=64)
    assert x.shape == (4, 64) and m[:, :64].sum() > 0
    lp = pair_logps(model, tok, [GOOD, long])                       # would raise past max_seq_len without the cut
    assert lp.shape == (2, 2) and torch.isfinite(lp).all()
    torch.testing.assert_close(lp[0], pair_logps(model, tok, [GOOD])[0])   # a short pair is unchanged by the cut
