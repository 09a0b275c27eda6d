"Reward model stage: preference JSONL errors, packed rows vs separate scoring, the Bradley-Terry loss, `llama3_nb reward` end to end."
import json, math
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from llama3_nb.tasks import TASKS
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.paged import paged_generate
from llama3_nb.generation import stops_of
from llama3_nb.tokenizer import ChatFormat, default_tokenizer
from llama3_nb.checkpoints import save_meta_checkpoint, save_hf_checkpoint
from llama3_nb.tasks import task_examples
from llama3_nb.reward import (bt_loss, ranking_loss, read_preference_jsonl, reward_model_from, score_packed, response_ids,
                              preference_data, load_reward_model, score)
from llama3_nb.generation import sample_replies
from llama3_nb.cli import main

def reward_main(argv): return main(["reward", *argv])       # the `llama3_nb reward` command

@pytest.fixture(scope="module")
def tok(): return default_tokenizer(2048)

@pytest.fixture(scope="module")
def rm(tok):
    torch.manual_seed(0)
    m = reward_model_from(init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)))).eval()
    with torch.no_grad(): m.score.weight.normal_()                 # rewards of order 1
    return m

USER, OK, BAD = {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, {"role": "assistant", "content": "5"}

@pytest.mark.parametrize("line,msg", [
    ("{not json", "not valid JSON"),
    (json.dumps({"prompt": [USER], "chosen": "4"}), "needs 'chosen' and 'rejected'"),
    (json.dumps({"chosen": [USER, OK], "rejected": [{"role": "user", "content": "3+3?"}, BAD]}), "must share a prompt"),
    (json.dumps({"chosen": [USER, OK], "rejected": [USER]}), "last message must be from the assistant"),
    (json.dumps({"prompt": [USER], "chosen": 4, "rejected": "5"}), "'chosen' must be a string"),
    (json.dumps({"prompt": [USER, OK], "chosen": "4", "rejected": "5"}), "must not end with an assistant"),
    (json.dumps({"prompt": [], "chosen": "4", "rejected": "5"}), "'prompt' must be"),
    (json.dumps([1, 2]), "needs 'chosen' and 'rejected'"),
])
def test_bad_jsonl_names_the_line(tmp_path, line, msg):
    good = json.dumps({"chosen": [USER, OK], "rejected": [USER, BAD]})
    p = tmp_path / "prefs.jsonl"; p.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(ValueError, match=f"prefs.jsonl:3: .*{msg}"): read_preference_jsonl(p)

def test_formats_agree(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in ({"chosen": [USER, OK], "rejected": [USER, BAD]},
                                                   {"prompt": "2+2?", "chosen": [OK], "rejected": [BAD]},
                                                   {"prompt": [USER], "edited": "4", "chosen": "four", "rejected": "5"})))
    recs = read_preference_jsonl(p)
    assert recs[0] == recs[1] == {"prompt": [USER], "chosen": "4", "rejected": "5"}
    assert recs[2]["edited"] == "4"
    empty = tmp_path / "e.jsonl"; empty.write_text("\n")
    with pytest.raises(ValueError, match="no records"): read_preference_jsonl(empty)

WORDS = st.sampled_from(["odd", "even", "63", "apple", "river", ",", "ANSWER:", "\n", "x y"])
TEXT = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(st.tuples(TEXT, st.lists(st.one_of(st.none(), TEXT), min_size=1, max_size=4)), min_size=1, max_size=4))
def test_packed_equals_separate(tok, rm, cases):
    cf = ChatFormat(tok)
    prompts, responses = [[{"role": "user", "content": p}] for p, _ in cases], [rs for _, rs in cases]
    packed = score_packed(rm, tok, prompts, responses, batch=3)                       # (N, R)
    for i, (p, rs) in enumerate(zip(prompts, responses)):
        for j in range(packed.shape[1]):
            r = rs[j] if j < len(rs) else None
            if r is None: assert math.isnan(packed[i, j]); continue
            ids = cf.encode_dialog_prompt(p) + response_ids(cf, r)
            with torch.no_grad(): alone = rm(torch.tensor([ids]))[0, -1].item()
            assert abs(packed[i, j].item() - alone) < 1e-5

@given(d=st.floats(-50, 50), c=st.floats(-50, 50))
def test_loss_properties(d, c):
    a, b = torch.tensor(c + d, dtype=torch.float64), torch.tensor(c, dtype=torch.float64)
    assert torch.allclose(bt_loss(a, b), -F.logsigmoid(a - b))
    assert torch.allclose(bt_loss(b, a), -F.logsigmoid(-(a - b)))                      # swapping gives -logsigmoid(-d)
    assert torch.allclose(bt_loss(a, b) - bt_loss(b, a), -(a - b), atol=1e-9)          # log-odds
    assert bt_loss(a, b) >= 0 and math.isfinite(bt_loss(a, b))

def test_ranking_loss_pairs():
    r = torch.tensor([[3.0, 2.0, 0.0], [0.0, 1.0, -1.0]])
    present = torch.tensor([[True, True, True], [False, True, True]])
    want = (bt_loss(r[0, 0], r[0, 1]) + bt_loss(r[0, 0], r[0, 2]) + bt_loss(r[0, 1], r[0, 2]) + bt_loss(r[1, 1], r[1, 2])) / 4
    assert torch.allclose(ranking_loss(r, present), want)

def test_generated_records_split():
    from llama3_nb.tasks import grade
    ex = task_examples(5, "train")
    for e, r in zip(ex, preference_data(ex)):
        assert grade(e, r["chosen"]) and not grade(e, r["rejected"]) and ("edited" not in r or grade(e, r["edited"]))

@pytest.mark.parametrize("fmt", ["meta", "hf"])
def test_reward_main_end_to_end(tmp_path, tok, fmt, capsys):
    torch.manual_seed(0)
    lm = init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)))
    ck = tmp_path / "ck"; (save_meta_checkpoint if fmt == "meta" else save_hf_checkpoint)(lm, ck); tok.save(ck / "tokenizer.model")
    out = tmp_path / "out"
    assert reward_main([str(ck), str(out), "--steps", "3", "--n-train", "3", "--n-heldout", "2", "--quiet"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"reward_head.pt", "metrics.jsonl", "summary.json", "tokenizer.model"} <= names
    assert ("params.json" in names) == (fmt == "meta") and ("config.json" in names) == (fmt == "hf")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"] == fmt and summary["n_train"] == 3 * len(TASKS)
    assert set(torch.load(out / "reward_head.pt", weights_only=True)) == {"score.weight"}
    back = load_reward_model(out)
    assert torch.isfinite(score(back, tok, [[USER]], ["4"])).all()
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"chosen": [{"role": "user", "content": f"q{i}?"}, OK], "rejected": [{"role": "user", "content": f"q{i}?"}, BAD]})
                              for i in range(20)) + "\n")
    assert reward_main([str(ck), str(tmp_path / "out2"), "--data", str(data), "--steps", "2", "--quiet"]) == 0

def test_reward_main_bad_input(tmp_path, tok, capsys):
    assert reward_main([str(tmp_path / "nowhere"), str(tmp_path / "o")]) == 2
    assert "no checkpoint directory" in capsys.readouterr().err
    torch.manual_seed(0)
    ck = tmp_path / "ck"; save_meta_checkpoint(init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words))), ck)
    assert reward_main([str(ck), str(tmp_path / "o")]) == 2                            # no tokenizer.model
    tok.save(ck / "tokenizer.model")
    bad = tmp_path / "bad.jsonl"; bad.write_text('{"chosen": 1}\n')
    assert reward_main([str(ck), str(tmp_path / "o"), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("llama3_nb reward: ") and "bad.jsonl:1" in err[-1]

def test_sampled_replies_stop_at_the_first_special_token(tok):
    "An untrained model samples reserved special tokens; a reply ends there, so no special-token name enters the text."
    torch.manual_seed(0)
    model = init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words))).eval()
    got = sample_replies(model, tok, [[{"role": "user", "content": "Is 7 even or odd?"}]] * 4, n=4, max_new_tokens=24, temperature=1.0, seed=0,
                         engine=paged_generate)
    names = list(tok.special_tokens)
    assert len(got) == 4 and all(len(rs) == 4 for rs in got)
    assert not any(n in r for rs in got for r in rs for n in names)
    raw = paged_generate(model, [ChatFormat(tok).encode_dialog_prompt([{"role": "user", "content": "Is 7 even or odd?"}])], 24,
                         n=4, temperature=1.0, seed=0, stop_tokens=stops_of(tok))
    first = min(tok.special_tokens.values())
    assert any(t >= first and t not in stops_of(tok) for ts in raw.tokens for t in ts)   # the cut had something to do
