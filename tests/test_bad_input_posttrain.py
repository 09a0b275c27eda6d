"""sft, reward and dpo on bad input: the input is never overwritten, non-finite weights are never saved, one line and exit 2."""
import hashlib, json
import pytest, torch
from llama3_nb.cli import main
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.tokenizer import default_tokenizer
from llama3_nb.checkpoints import save_meta_checkpoint

SMALL = ["--steps", "2", "--n-train", "2", "--n-heldout", "1", "--quiet", "--threads", "1"]

@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    tok, path = default_tokenizer(256, n_chars=20_000), tmp_path_factory.mktemp("ck")
    torch.manual_seed(0)
    save_meta_checkpoint(init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words))), path); tok.save(path / "tokenizer.model")
    return path

def digest(folder): return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}

def run(capsys, *argv):
    capsys.readouterr(); rc = main([str(a) for a in argv]); return rc, capsys.readouterr().err.strip().splitlines()

def refused(capsys, want, *argv):
    rc, err = run(capsys, *argv)
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"llama3_nb {argv[0]}: ") and want in err[0], (rc, err)

@pytest.mark.parametrize("cmd", ["sft", "reward", "dpo"])
def test_output_into_the_input_is_refused(ck, capsys, cmd):
    before = digest(ck)
    refused(capsys, f"OUT_DIR {ck} is the input {ck}", cmd, ck, ck, *SMALL)
    refused(capsys, "is inside the input", cmd, ck, ck / "out", *SMALL)
    refused(capsys, "holds the input", cmd, ck, ck.parent, *SMALL)
    assert digest(ck) == before

@pytest.mark.parametrize("cmd", ["sft", "reward", "dpo"])
def test_divergence_saves_no_weights(ck, tmp_path, capsys, cmd):
    rc, err = run(capsys, cmd, ck, tmp_path / "o", "--lr", "1e30", *SMALL)
    assert rc == 3 and "at step" in err[-1] and "no weights were saved" in err[-1], err
    assert not list((tmp_path / "o").glob("*.pth")) and not list((tmp_path / "o").glob("*.safetensors"))

@pytest.mark.parametrize("cmd,opts,want", [
    ("sft", ["--device", "bogus"], "--device 'bogus' is not a torch device"),
    ("sft", ["--lr", "nan"], "lr must be > 0"),
    ("reward", ["--lr", "-1"], "lr must be > 0"),
    ("dpo", ["--beta", "0"], "beta > 0"),
    ("sft", ["--steps", "0"], "steps must be >= 1, got 0"),
    ("reward", ["--batch-size", "0"], "batch_size must be >= 1"),
])
def test_bad_options(ck, tmp_path, capsys, cmd, opts, want):
    refused(capsys, want, cmd, ck, tmp_path / "o", *SMALL, *opts)

def test_reward_refuses_chosen_equal_rejected(ck, tmp_path, capsys):
    d = tmp_path / "p.jsonl"
    d.write_text(json.dumps({"prompt": "hi", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps({"prompt": "hi", "chosen": "a", "rejected": "a"}) + "\n")
    refused(capsys, f"{d}:2: 'chosen' and 'rejected' are the same reply", "reward", ck, tmp_path / "o", "--data", d, *SMALL)
    refused(capsys, f"{d}:2: 'chosen' and 'rejected' are the same reply", "dpo", ck, tmp_path / "o", "--data", d, *SMALL)

def test_dpo_takes_the_string_prompt_records_reward_takes(ck, tmp_path, capsys):
    from llama3_nb.dpo import read_pairs_jsonl
    d = tmp_path / "p.jsonl"
    d.write_text("".join(json.dumps({"prompt": f"say {w}", "chosen": w, "rejected": w + "!"}) + "\n" for w in ("red", "blue", "green", "pink", "gold", "cyan")))
    recs = read_pairs_jsonl(d)
    assert recs[0]["prompt"] == [{"role": "user", "content": "say red"}] and recs[0]["chosen"] == [{"role": "assistant", "content": "red"}]
    rc, err = run(capsys, "dpo", ck, tmp_path / "o", "--data", d, *SMALL)
    assert rc == 0, err

def test_eval_checks_out_and_device_before_any_work(ck, tmp_path, capsys):
    refused(capsys, f"--out {tmp_path} is a folder", "eval", ck, "--out", tmp_path)
    refused(capsys, "--device 'bogus' is not a torch device", "eval", ck, "--device", "bogus")

def test_posttrain_refuses_bad_input(ck, tmp_path, capsys):
    "The real-model chain (15b) checks its folders before any work: never an output in, over or around the input."
    before = digest(ck)
    refused(capsys, f"--out {ck} is the input {ck}", "posttrain", ck, "--out", ck, "--quick")
    refused(capsys, "holds the input", "posttrain", ck, "--out", ck.parent, "--quick")
    refused(capsys, "no checkpoint directory", "posttrain", tmp_path / "missing", "--out", tmp_path / "o", "--quick")
    assert digest(ck) == before and not (tmp_path / "o").exists()
