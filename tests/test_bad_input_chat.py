"""`llama3_nb chat`: bad options are one line and exit 2; long lines and long conversations stay inside the context."""
import io, sys
import pytest, torch
from llama3_nb.cli import main
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.tokenizer import default_tokenizer
from llama3_nb.checkpoints import save_hf_checkpoint

@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    tok, path = default_tokenizer(256, n_chars=20_000), tmp_path_factory.mktemp("ck")
    torch.manual_seed(0)
    save_hf_checkpoint(init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words, max_seq_len=128))), path); tok.save(path / "tokenizer.model")
    return path

def chat(capsys, monkeypatch, stdin, *argv):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin)); capsys.readouterr()
    rc = main(["chat", *map(str, argv)]); o = capsys.readouterr()
    return rc, o.out, o.err.strip().splitlines()

@pytest.mark.parametrize("opts,want", [
    (["--top-p", "0"], "--top-p must be a finite number in (0, 1], got 0.0"),
    (["--top-p", "2"], "--top-p must be a finite number in (0, 1], got 2.0"),
    (["--temperature", "nan"], "--temperature must be a finite number in [0, inf], got nan"),
    (["--temperature", "-1"], "--temperature must be a finite number in [0, inf], got -1.0"),
    (["--device", "bogus"], "--device 'bogus' is not a torch device"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
])
def test_bad_options(ck, capsys, monkeypatch, opts, want):
    rc, out, err = chat(capsys, monkeypatch, "hi\n", ck, *opts)
    assert rc == 2 and len(err) == 1 and err[0].startswith("llama3_nb chat: ") and want in err[0], err

def test_a_line_longer_than_the_context_is_cut(ck, capsys, monkeypatch):
    rc, out, err = chat(capsys, monkeypatch, "word " * 400 + "\nhello\n", ck, "--max-new-tokens", "4", "--temperature", "0")
    assert rc == 0 and len(out.splitlines()) == 2, (out, err)
    assert err[0] == "llama3_nb chat: a message longer than the context was cut to fit 124 tokens"        # said once, not per line
    assert err[1:] in ([], ["llama3_nb chat: the conversation outgrew the 128-token context: dropping the oldest turns (the system prompt stays)"])

def test_a_long_conversation_drops_old_turns_and_says_so_once(ck, capsys, monkeypatch):
    lines = "".join(f"this is line number {i} of a long piped talk\n" for i in range(25))
    rc, out, err = chat(capsys, monkeypatch, lines, ck, "--max-new-tokens", "6", "--temperature", "0", "--system", "Be brief.")
    assert rc == 0 and len(out.splitlines()) == 25
    assert err == ["llama3_nb chat: the conversation outgrew the 128-token context: dropping the oldest turns (the system prompt stays)"]

def test_default_reply_length_is_capped_to_the_context(ck, capsys, monkeypatch):
    rc, out, err = chat(capsys, monkeypatch, "hi\n", ck, "--temperature", "0")         # default 256 new tokens > 128
    assert rc == 0 and err == ["llama3_nb chat: replies capped at 64 tokens (half of the model's 128-token context)"]
