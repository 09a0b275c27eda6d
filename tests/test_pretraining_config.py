"""Bad config input is refused with a message that names the key; good TOML and JSON load."""
import json
import pytest
from llama3_nb.pretraining import TrainConfig, config_from_dict, load_config
from llama3_nb.cli import main

def train_main(argv): return main(["train", *argv])       # the `llama3_nb train` command

def test_toml_and_json_load(tmp_path):
    (tmp_path / "a.toml").write_text('lr = 1e-3\nstages = [[0, 512, 64]]\n[model]\nvocab_size = 258\n')
    (tmp_path / "a.json").write_text(json.dumps(dict(lr=1e-3, stages=[[0, 512, 64]], model=dict(vocab_size=258))))
    assert load_config(tmp_path / "a.toml") == load_config(tmp_path / "a.json")

@pytest.mark.parametrize("d, key", [
    ({"learning_rate": 1e-3}, "learning_rate"), ({"lr": "fast"}, "'lr'"), ({"max_steps": 10.0}, "'max_steps'"),
    ({"max_steps": True}, "'max_steps'"), ({"doc_mask": 1}, "'doc_mask'"), ({"stages": [[0, 100]]}, "stages"),
    ({"stages": [[10, 512, 64]]}, "stages"), ({"stages": [[0, 100, 32]]}, "multiple of seq_len"),
    ({"autocast": "fp16"}, "autocast"), ({"max_steps": 0}, "max_steps"), ({"warmup_steps": 500}, "warmup_steps"),
    ({"anneal_steps": 101}, "anneal_steps"), ({"model": [1]}, "'model'")])
def test_bad_values_name_the_key(d, key):
    with pytest.raises((ValueError, TypeError), match=key): config_from_dict(d)

def test_bad_toml_is_a_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_text("lr = = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"): load_config(tmp_path / "bad.toml")

@pytest.mark.parametrize("text, argv, msg", [
    ("lr = = 3\n", [], "not valid TOML"), ("steps = 3\n", [], "steps"), ("", ["--set", "lr"], "KEY=VALUE"),
    ("", ["--set", "nope=1"], "nope"), ("", ["--set", "eval_seq_lens=64"], "eval_seq_lens"),
    ('preset = "tiny"\n[model]\nvocab_size = 100\n', ["--max-steps", "20"], "vocab_size=100")])
def test_cli_bad_config_exit_2(tmp_path, capsys, text, argv, msg):
    (tmp_path / "c.toml").write_text(text)
    code = train_main([str(tmp_path / "c.toml"), "--out-dir", str(tmp_path / "o"), "--no-progress", *argv])
    assert code == 2 and msg in capsys.readouterr().err

def test_cli_missing_file(tmp_path, capsys):
    assert train_main([str(tmp_path / "none.toml")]) == 2 and "no config file" in capsys.readouterr().err
