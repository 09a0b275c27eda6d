"""Random bytes in any file a command reads give a clean ValueError or OSError naming the trouble, never another exception."""
import json
import pytest, torch
from hypothesis import given, settings, HealthCheck, strategies as st
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer
from llama3_nb.checkpoints import save_meta_checkpoint, save_hf_checkpoint, load_checkpoint, read_hf_config
from llama3_nb.tokenizer import Tokenizer
from llama3_nb.sft import read_sft_jsonl
from llama3_nb.reward import read_preference_jsonl
from llama3_nb.dpo import read_pairs_jsonl
from llama3_nb.pretraining import load_config, load_train_state

CLEAN = (ValueError, OSError)
JSONISH = st.one_of(st.binary(max_size=300),
                    st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats() | st.text(max_size=8),
                                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                                     ["dim", "n_layers", "n_heads", "vocab_size", "hidden_size", "num_attention_heads", "num_hidden_layers",
                                      "intermediate_size", "rope_scaling", "messages", "prompt", "chosen", "rejected", "role", "content",
                                      "lr", "stages", "model", "text", "factor", "rope_type"]), c, max_size=6), max_leaves=12
                                 ).map(lambda v: json.dumps(v).encode()))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    m, root = Transformer(ModelArgs.tiny(n_layers=1)), tmp_path_factory.mktemp("ck")
    save_meta_checkpoint(m, root / "meta"); save_hf_checkpoint(m, root / "hf")
    return root

def clean(f):
    try: f()
    except CLEAN: pass

@SETTINGS
@given(data=JSONISH)
def test_params_json(dirs, data):
    (dirs / "meta/params.json").write_bytes(data); clean(lambda: ModelArgs.from_params_json(dirs / "meta"))

@SETTINGS
@given(data=JSONISH)
def test_config_json(dirs, data):
    (dirs / "hf/config.json").write_bytes(data); clean(lambda: read_hf_config(dirs / "hf"))

@SETTINGS
@given(data=st.binary(max_size=2000), cut=st.integers(0, 10**5))
def test_weights_files(tmp_path_factory, data, cut):
    root = tmp_path_factory.mktemp("w"); m = Transformer(ModelArgs.tiny(n_layers=1))
    save_meta_checkpoint(m, root / "meta"); save_hf_checkpoint(m, root / "hf")
    for f in (root / "meta/consolidated.00.pth", root / "hf/model.safetensors"):
        good = f.read_bytes(); f.write_bytes(data if cut % 3 == 0 else good[:cut % len(good)] + data[:20])   # garbage, or truncated
        clean(lambda: load_checkpoint(f.parent)); clean(lambda: load_train_state(f))

@SETTINGS
@given(data=st.one_of(st.binary(max_size=400), st.lists(st.tuples(st.binary(min_size=0, max_size=6), st.integers(-2, 300)), max_size=20).map(
    lambda rows: b"".join(__import__("base64").b64encode(b) + b" " + str(r).encode() + b"\n" for b, r in rows))))
def test_tokenizer_model(tmp_path_factory, data):
    f = tmp_path_factory.mktemp("t") / "tokenizer.model"; f.write_bytes(data); clean(lambda: Tokenizer.from_file(f))

@SETTINGS
@given(lines=st.lists(JSONISH, min_size=0, max_size=4))
def test_jsonl_readers(tmp_path_factory, lines):
    f = tmp_path_factory.mktemp("j") / "d.jsonl"; f.write_bytes(b"\n".join(l.replace(b"\n", b" ") for l in lines))
    for read in (read_sft_jsonl, read_preference_jsonl, read_pairs_jsonl): clean(lambda: read(f))

@SETTINGS
@given(data=JSONISH, toml=st.booleans())
def test_training_config(tmp_path_factory, data, toml):
    f = tmp_path_factory.mktemp("c") / ("c.toml" if toml else "c.json"); f.write_bytes(data); clean(lambda: load_config(f))
