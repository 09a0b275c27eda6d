"""Checkpoint commands on bad input: one line, exit 2, the input untouched; saves that are killed leave the old checkpoint."""
import hashlib, json, os, subprocess, sys, textwrap
import pytest, torch
from llama3_nb.cli import main
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.tokenizer import default_tokenizer
from llama3_nb.checkpoints import save_meta_checkpoint, save_hf_checkpoint, load_checkpoint

@pytest.fixture(scope="module")
def tok(): return default_tokenizer(256, n_chars=20_000)

def make_ck(tok, path, fmt="meta", seed=0):
    torch.manual_seed(seed)
    m = init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)))
    (save_meta_checkpoint if fmt == "meta" else save_hf_checkpoint)(m, path); tok.save(path / "tokenizer.model")
    return m

def digest(folder):
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}

def logits(m):
    with torch.no_grad(): return m(torch.arange(12)[None])

def run(capsys, *argv):
    "`llama3_nb ARGV` in-process: (exit status, stderr lines)."
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()

def one_line(capsys, want, *argv, cmd=None):
    rc, err = run(capsys, *argv)
    assert rc == 2 and len(err) == 1, (rc, err)
    assert err[0].startswith(f"llama3_nb {cmd or argv[0]}: ") and want in err[0], err[0]
    return err[0]

@pytest.mark.parametrize("to", ["meta", "hf"])
def test_convert_into_its_input_is_refused(tok, tmp_path, capsys, to):
    make_ck(tok, tmp_path / "ck"); before = digest(tmp_path / "ck")
    one_line(capsys, "is the input", "convert", tmp_path / "ck", tmp_path / "ck", "--to", to)
    one_line(capsys, "is inside the input", "convert", tmp_path / "ck", tmp_path / "ck" / "sub", "--to", to)
    one_line(capsys, "holds the input", "convert", tmp_path / "ck", tmp_path, "--to", to)
    assert digest(tmp_path / "ck") == before

def test_convert_copies_the_tokenizer_and_leaves_one_format(tok, tmp_path, capsys):
    m = make_ck(tok, tmp_path / "ck")
    make_ck(tok, tmp_path / "out", "meta", seed=1)                      # an older checkpoint of the other format
    assert run(capsys, "convert", tmp_path / "ck", tmp_path / "out", "--to", "hf")[0] == 0
    assert sorted(digest(tmp_path / "out")) == ["config.json", "model.safetensors", "tokenizer.model"]
    assert torch.equal(logits(load_checkpoint(tmp_path / "out")), logits(m))   # the new weights, not the stale params.json

def test_a_killed_meta_save_leaves_the_old_checkpoint(tok, tmp_path):
    old = make_ck(tok, tmp_path / "ck"); before = digest(tmp_path / "ck")
    code = textwrap.dedent(f"""
        import os, signal, torch
        from llama3_nb.config import ModelArgs
        from llama3_nb.model import Transformer
        from llama3_nb import checkpoints
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)     # die once the new weights are written, before any rename
        checkpoints.save_meta_checkpoint(Transformer(ModelArgs.tiny(vocab_size={tok.n_words})), {str(tmp_path / 'ck')!r})
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == -9, r.stderr.decode()[-500:]
    after = digest(tmp_path / "ck")
    assert after.pop("consolidated.00.pth.tmp") and after == before        # killed mid-save: only a .tmp file beside it
    assert torch.equal(logits(load_checkpoint(tmp_path / "ck")), logits(old))

def test_a_failed_hf_save_over_a_meta_checkpoint_leaves_it(tok, tmp_path, monkeypatch):
    import safetensors.torch
    old = make_ck(tok, tmp_path / "ck")
    def boom(*a, **k): raise OSError("disk full")
    monkeypatch.setattr(safetensors.torch, "save", boom)
    with pytest.raises(OSError): save_hf_checkpoint(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)), tmp_path / "ck")
    assert torch.equal(logits(load_checkpoint(tmp_path / "ck")), logits(old))
    assert not (tmp_path / "ck" / "config.json").exists()

def test_debug_shows_the_traceback(tok, tmp_path):
    make_ck(tok, tmp_path / "ck")
    with pytest.raises(ValueError, match="is the input"): main(["--debug", "convert", str(tmp_path / "ck"), str(tmp_path / "ck"), "--to", "hf"])
    assert "LLAMA3_NB_DEBUG" not in os.environ

def _edit_json(path, **kw):
    d = json.loads(path.read_text()); d.update(kw); d = {k: v for k, v in d.items() if v is not ...}
    path.write_text(json.dumps(d))

PARAMS = [  # (edit of params.json, what the one line says)
    (dict(dim=...), "lacks the required field(s) ['dim']"),
    (dict(n_heads=0), "n_heads must be positive"),
    (dict(dim="64"), "'dim' should be int"),
    (dict(norm_eps=-1.0), "norm_eps must be a positive finite number"),
    (dict(n_layer=2), "unknown params.json field(s) ['n_layer']"),
]

@pytest.mark.parametrize("edit,want", PARAMS)
def test_bad_params_json(tok, tmp_path, capsys, edit, want):
    make_ck(tok, tmp_path / "ck"); _edit_json(tmp_path / "ck" / "params.json", **edit)
    line = one_line(capsys, want, "info", tmp_path / "ck")
    assert "params.json" in line
    one_line(capsys, want, "chat", tmp_path / "ck")

CONFIGS = [
    (dict(num_attention_heads=0), "'num_attention_heads' must be positive"),
    (dict(hidden_size="64"), "'hidden_size' should be int"),
    (dict(tie_word_embeddings="no"), "'tie_word_embeddings' should be bool"),
    (dict(rope_scaling={"rope_type": "llama3", "low_freq_factor": 1.0}), "needs a number for ['factor'"),
    (dict(vocab_size=...), "lacks 'vocab_size'"),
    (dict(rope_scaling={"rope_type": "yarn", "factor": 2.0}), "rope_type 'yarn' is not supported"),
]

@pytest.mark.parametrize("edit,want", CONFIGS)
def test_bad_config_json(tok, tmp_path, capsys, edit, want):
    make_ck(tok, tmp_path / "ck", "hf"); _edit_json(tmp_path / "ck" / "config.json", **edit)
    assert "config.json" in one_line(capsys, want, "info", tmp_path / "ck")
    one_line(capsys, want, "convert", tmp_path / "ck", tmp_path / "o", "--to", "meta")

@pytest.mark.parametrize("fmt,name,content,want", [
    ("meta", "consolidated.00.pth", b"", "consolidated.00.pth is empty"),
    ("meta", "consolidated.00.pth", slice(0, 3000), "consolidated.00.pth is not a readable weights file"),
    ("meta", "consolidated.00.pth", b"garbage" * 50, "consolidated.00.pth is not a readable weights file"),
    ("hf", "model.safetensors", b"", "model.safetensors is empty"),
    ("hf", "model.safetensors", slice(0, 3000), "model.safetensors is not a readable weights file"),
    ("hf", "model.safetensors", b"\xff" * 64, "model.safetensors is not a readable weights file"),
    ("hf", "config.json", b"{not json", "config.json is not valid JSON"),
    ("hf", "model.safetensors.index.json", json.dumps({"weight_map": {"a": "/etc/passwd"}}).encode(), "a file outside"),
    ("hf", "model.safetensors.index.json", json.dumps({"weight_map": {"a": "../x.safetensors"}}).encode(), "a file outside"),
    ("hf", "model.safetensors.index.json", b"[]", "is not a shard index"),
])
def test_bad_weight_files(tok, tmp_path, capsys, fmt, name, content, want):
    make_ck(tok, tmp_path / "ck", fmt); f = tmp_path / "ck" / name
    f.write_bytes(f.read_bytes()[content] if isinstance(content, slice) else content)
    one_line(capsys, want, "convert", tmp_path / "ck", tmp_path / "o", "--to", "hf" if fmt == "meta" else "meta")
    one_line(capsys, want, "chat", tmp_path / "ck")

def test_garbage_tokenizer(tok, tmp_path, capsys):
    make_ck(tok, tmp_path / "ck"); (tmp_path / "ck" / "tokenizer.model").write_bytes(b"\x00\x01 not base64\n")
    one_line(capsys, "tokenizer.model, line 1", "chat", tmp_path / "ck")
    one_line(capsys, "tokenizer.model, line 1", "tokenizer", "encode", tmp_path / "ck" / "tokenizer.model", "hi", cmd="tokenizer encode")

def test_tokenizer_train_reports_what_it_wrote(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    one_line(capsys, "no text to train on", "tokenizer", "train", tmp_path / "empty.txt", "--out", tmp_path / "t.model", cmd="tokenizer train")
    assert not (tmp_path / "t.model").exists()
    (tmp_path / "small.txt").write_text("ab ab ab")
    capsys.readouterr(); assert main(["tokenizer", "train", str(tmp_path / "small.txt"), "--vocab-size", "300", "--out", str(tmp_path / "t.model")]) == 0
    out = capsys.readouterr().out
    n = len((tmp_path / "t.model").read_text().splitlines())
    assert f"({n} BPE ranks + 256 specials; the text allows no more than {n} of the 300 asked)" in out and n < 300
    one_line(capsys, "is a folder", "tokenizer", "train", tmp_path / "small.txt", "--out", tmp_path, cmd="tokenizer train")
