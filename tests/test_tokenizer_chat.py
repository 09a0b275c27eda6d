"ChatFormat: Meta's structure, the ipython role and tool calls, bad messages, and no special-token injection."
from functools import cache

import pytest
from hypothesis import given, settings, strategies as st

from llama3_nb.tokenizer import ROLES, ChatFormat, default_tokenizer, special_token_names

@cache
def tok():
    return default_tokenizer(1024, n_chars=200_000)

def specials(ids):
    "Names of the special tokens in `ids`, in order."
    inv = {v: k for k, v in tok().special_tokens.items()}
    return [inv[i] for i in ids if i in inv]

HEAD = ["<|start_header_id|>", "<|end_header_id|>"]

def test_dialog_structure_is_metas():
    cf = ChatFormat(tok())
    dialog = [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello."}, {"role": "ipython", "content": '{"result": 4}'}]
    ids = cf.encode_dialog_prompt(dialog)
    assert tok().decode(ids) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        '<|start_header_id|>ipython<|end_header_id|>\n\n{"result": 4}<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert ids[0] == tok().bos_id
    assert ids == [tok().bos_id, *[i for m in dialog for i in cf.encode_message(m)], *cf.encode_header({"role": "assistant"})]
    e = tok().encode
    assert cf.encode_message(dialog[1]) == [tok().special_tokens["<|start_header_id|>"], *e("user", bos=False, eos=False),
                                           tok().special_tokens["<|end_header_id|>"], *e("\n\n", bos=False, eos=False),
                                           *e("Hi", bos=False, eos=False), tok().eot_id]

def test_tool_call_uses_python_tag_and_eom():
    ids = ChatFormat(tok()).encode_message({"role": "assistant", "content": "wolfram_alpha.call(query='2+2')", "tool_call": True})
    assert specials(ids) == [*HEAD, "<|python_tag|>", "<|eom_id|>"]
    assert tok().decode(ids).endswith("<|python_tag|>wolfram_alpha.call(query='2+2')<|eom_id|>")
    with pytest.raises(ValueError, match="only an assistant"):
        ChatFormat(tok()).encode_message({"role": "user", "content": "x", "tool_call": True})

@pytest.mark.parametrize("message", [{"role": "root", "content": "x"}, {"role": "System", "content": "x"},
                                     {"role": "<|eot_id|>", "content": "x"}, {"content": "x"}, {"role": None, "content": "x"},
                                     "user: hi", ("user", "hi")])
def test_bad_role_is_a_clear_error(message):
    cf = ChatFormat(tok())
    for f in (cf.encode_header, cf.encode_message, lambda m: cf.encode_dialog_prompt([m])):
        with pytest.raises(ValueError, match="unknown role"):
            f(message)

@pytest.mark.parametrize("content", [None, 3, ["a"], b"bytes"])
def test_bad_content_is_a_clear_error(content):
    with pytest.raises(TypeError, match="content must be a str"):
        ChatFormat(tok()).encode_message({"role": "user", "content": content})

def test_roles():
    assert ROLES == ("system", "user", "assistant", "ipython")

hostile = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(special_token_names()[:12]),
                             st.sampled_from(["<|", "|>", "eot_id", "\n\n", "assistant"])), max_size=10).map("".join)

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ROLES), hostile), min_size=1, max_size=4))
def test_user_text_never_becomes_a_special_token(messages):
    cf = ChatFormat(tok())
    dialog = [{"role": r, "content": c} for r, c in messages]
    # every path: the only special tokens are the structural ones
    for m in dialog:
        assert specials(cf.encode_message(m)) == [*HEAD, "<|eot_id|>"]
        assert specials(cf.encode_header(m)) == HEAD
        call = cf.encode_message({**m, "role": "assistant", "tool_call": True})
        assert specials(call) == [*HEAD, "<|python_tag|>", "<|eom_id|>"]
    ids = cf.encode_dialog_prompt(dialog)
    assert specials(ids) == ["<|begin_of_text|>", *[*HEAD, "<|eot_id|>"] * len(dialog), *HEAD]
    # and the text survives: decoding gives back each stripped content
    assert tok().decode(ids) == "<|begin_of_text|>" + "".join(
        f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>" for m in dialog
    ) + "<|start_header_id|>assistant<|end_header_id|>\n\n"
