"SFT: bad chat JSONL, the `llama3_nb sft` command end to end, NaN handling, and a property test of the prompt mask."
import json
import pytest
import torch
from hypothesis import given, settings, HealthCheck, strategies as st
from llama3_nb.sft import IGNORE, SFTConfig, encode_sft, pack_rows, read_sft_jsonl, sft_train
from llama3_nb.tasks import TASKS, prompt_key, split_of, task_examples
from llama3_nb.config import write_jsonl
from llama3_nb.tokenizer import ChatFormat, default_tokenizer
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.pretraining import NonFiniteLoss
from llama3_nb.checkpoints import load_checkpoint, save_meta_checkpoint, save_hf_checkpoint
from llama3_nb.cli import main

def sft_main(argv): return main(["sft", *argv])       # the `llama3_nb sft` command

@pytest.fixture(scope="module")
def tok(): return default_tokenizer(2048)

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}

@pytest.mark.parametrize("line, msg", [
    ('{"msgs": []}', "missing 'messages'"),
    ('{"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}', "message 0 has unknown role 'bot'"),
    ('{"messages": [{"role": "assistant", "content": "y"}, {"role": "user", "content": "x"}]}', "last message must be from the assistant"),
    ('{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}', "message 0 content must be a string, got int"),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null}]}', "message 1 content must be a string"),
    ('{"messages": []}', "non-empty 'messages' list"),
    ('{"messages": [', "not valid JSON"),
    ('[1, 2]', "missing 'messages'"),
])
def test_bad_jsonl_names_the_line(tmp_path, line, msg):
    p = tmp_path / "data.jsonl"
    p.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")          # a blank line 2: the bad one is line 3
    with pytest.raises(ValueError) as e: read_sft_jsonl(p)
    assert "data.jsonl:3: " in str(e.value) and msg in str(e.value)

def test_empty_jsonl(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no examples"): read_sft_jsonl(tmp_path / "e.jsonl")

def test_splits_never_overlap():
    train, held = task_examples(300, "train", seed=3), task_examples(60, "heldout", seed=4)
    tr = {prompt_key(e["messages"]) for e in train}
    assert held and not tr & {prompt_key(e["messages"]) for e in held}
    assert all(split_of(prompt_key(e["messages"])) == "heldout" for e in held)

def test_pack_keeps_every_token(tok):
    cf = ChatFormat(tok)
    enc = [encode_sft(cf, e["messages"]) for e in task_examples(20, "train")]
    x, y, _ = pack_rows(enc, 96, tok.eos_id)
    assert int((x == tok.bos_id).sum()) == len(enc)
    assert int((y != IGNORE).sum()) == sum(sum(v != IGNORE for v in l) for _, l in enc)

def _tiny_checkpoint(tok, path, fmt="meta"):
    torch.manual_seed(0)
    m = init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)))
    (save_meta_checkpoint if fmt == "meta" else save_hf_checkpoint)(m, path); tok.save(path / "tokenizer.model")
    return m

@pytest.mark.parametrize("fmt", ["meta", "hf"])
def test_sft_main_end_to_end(tok, tmp_path, fmt):
    m = _tiny_checkpoint(tok, tmp_path / "ck", fmt)
    out = tmp_path / "out"
    rc = sft_main([str(tmp_path / "ck"), str(out), "--steps", "3", "--n-train", "6", "--n-heldout", "2", "--lr", "1e-3", "--quiet"])
    assert rc == 0
    assert (out / ("params.json" if fmt == "meta" else "config.json")).is_file() and (out / "tokenizer.model").is_file()
    tuned = load_checkpoint(out)
    assert any(not torch.equal(a, b) for a, b in zip(m.state_dict().values(), tuned.state_dict().values()))
    x = torch.randint(0, tok.n_words, (1, 8))
    assert torch.isfinite(tuned(x)).all()
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and "heldout_loss" in rows[-1]
    s = json.loads((out / "summary.json").read_text())
    assert s["format"] == fmt and s["n_train"] == 6 * len(TASKS) and s["n_heldout"] == 2 * len(TASKS)
    assert set(s["heldout_correct"]["after"]) >= {"larger", "add", "all"} and s["heldout_loss"]["after"] > 0

def test_sft_main_user_data_and_errors(tok, tmp_path, capsys):
    _tiny_checkpoint(tok, tmp_path / "ck")
    data = write_jsonl([{"messages": [{"role": "user", "content": f"Say {w}"}, {"role": "assistant", "content": w}]}
                        for w in ("red", "blue", "green", "cyan", "pink", "gold", "grey", "teal")], tmp_path / "d.jsonl")
    assert sft_main([str(tmp_path / "ck"), str(tmp_path / "o1"), "--data", str(data), "--steps", "2", "--quiet"]) == 0
    s = json.loads((tmp_path / "o1" / "summary.json").read_text())
    assert s["n_train"] + s["n_heldout"] == 8 and s["heldout_correct"]["after"] == {}      # no gradable task: no accuracy
    bad = tmp_path / "bad.jsonl"; bad.write_text(json.dumps(GOOD) + "\n" + '{"messages": [{"role": "user", "content": "x"}]}\n')
    capsys.readouterr()
    assert sft_main([str(tmp_path / "ck"), str(tmp_path / "o2"), "--data", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.jsonl:2" in err
    assert sft_main([str(tmp_path / "nope"), str(tmp_path / "o3")]) == 2
    (tmp_path / "ck" / "tokenizer.model").unlink()
    assert sft_main([str(tmp_path / "ck"), str(tmp_path / "o4")]) == 2
    assert "no tokenizer" in capsys.readouterr().err

def test_nan_loss_names_the_step(tok):
    torch.manual_seed(0)
    m = init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)))
    with torch.no_grad(): m.output.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match="at step 0"):
        sft_train(m, tok, task_examples(2, "train"), SFTConfig(steps=2, warmup_steps=1, progress=False))

def test_config_checks():
    with pytest.raises(ValueError): SFTConfig(steps=0)
    with pytest.raises(ValueError): SFTConfig(steps=5, warmup_steps=6)
    with pytest.raises(ValueError): SFTConfig(lr=0)

TEXT = st.lists(st.sampled_from(list("ab 7\n<|>_é") + ["<|eot_id|>", "<|start_header_id|>", "assistant"]), max_size=12).map("".join)
MSG = st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user", "assistant", "ipython"]), TEXT)

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(MSG, max_size=5), TEXT)
def test_mask_trains_only_assistant_tokens(tok, msgs, last):
    msgs = msgs + [{"role": "assistant", "content": last}]
    cf = ChatFormat(tok)
    tokens, labels = encode_sft(cf, msgs)
    assert len(tokens) == len(labels)
    assert all(l == IGNORE or l == t for t, l in zip(tokens, labels))
    trained = [l for l in labels if l != IGNORE]
    asst = [m for m in msgs if m["role"] == "assistant"]
    # exactly the assistant contents and one <|eot_id|> per assistant message, in order; nothing from anyone else
    assert trained == [i for m in asst for i in tok.encode(m["content"].strip(), bos=False, eos=False) + [tok.eot_id]]
    # every <|eot_id|> ending an assistant turn is trained; those ending other turns are not
    eots = [i for i, t in enumerate(tokens) if t == tok.eot_id]
    assert len(eots) == len(msgs)                                   # user text never becomes a special token
    assert [labels[i] != IGNORE for i in eots] == [m["role"] == "assistant" for m in msgs]
    specials = {tok.bos_id, tok.special_tokens["<|start_header_id|>"], tok.special_tokens["<|end_header_id|>"]}
    assert not any(l in specials for l in trained)
