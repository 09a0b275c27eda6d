"""Property-based checks of the config arithmetic against a real model."""
import torch
from hypothesis import given, settings, strategies as st
from llama3_nb.config import ModelArgs, count_params
from llama3_nb.model import Transformer
from llama3_nb.checkpoints import args_to_hf_config, hf_config_to_args

@st.composite
def small_args(draw):
    kv = draw(st.sampled_from([1, 2, 4])); groups = draw(st.sampled_from([1, 2, 3]))
    dh = draw(st.sampled_from([2, 4, 8, 16]))
    H = kv * groups
    return ModelArgs(dim=H * dh, n_layers=draw(st.integers(1, 3)), n_heads=H, n_kv_heads=kv,
                     vocab_size=draw(st.integers(8, 300)), multiple_of=draw(st.sampled_from([1, 8, 32, 256])),
                     ffn_dim_multiplier=draw(st.sampled_from([None, 1.0, 1.3, 1.5])),
                     tie_word_embeddings=draw(st.booleans()), max_seq_len=64)

@settings(max_examples=40, deadline=None)
@given(small_args())
def test_count_params_equals_the_built_model(args):
    with torch.device("meta"): m = Transformer(args)
    assert sum(p.numel() for p in m.parameters()) == count_params(args)

@settings(max_examples=40, deadline=None)
@given(small_args())
def test_params_json_and_hf_config_round_trip(args):
    assert ModelArgs.from_dict(args.to_params_dict()) == args
    back = hf_config_to_args(args_to_hf_config(args))
    assert back.ffn_hidden_dim == args.ffn_hidden_dim and back.n_kv_heads == args.n_kv_heads
    assert back.tie_word_embeddings == args.tie_word_embeddings
