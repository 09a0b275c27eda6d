"Rejection sampling stage: the RM's pick is the argmax of separately computed rewards, the reward threshold, bad inputs."
import pytest
import torch
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.tokenizer import default_tokenizer
from llama3_nb.sft import SFTConfig
from llama3_nb.tasks import task_examples
from llama3_nb.reward import reward_model_from, score
from llama3_nb.rejection import bench_rejection, prompt_of, rejection_sample, rs_finetune

@pytest.fixture(scope="module")
def tok(): return default_tokenizer(2048)

@pytest.fixture(scope="module")
def models(tok):
    torch.manual_seed(0)
    policy = init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words))).eval()
    torch.manual_seed(1)
    rm = reward_model_from(init_weights(Transformer(ModelArgs.tiny(vocab_size=tok.n_words)))).eval()
    with torch.no_grad(): rm.score.weight.normal_()                 # rewards of order 1, so the argmax is not a tie
    return policy, rm

EXS = task_examples(2, "train", seed=0, tasks=["add", "parity", "format"])

def test_pick_is_argmax_of_separate_rewards(tok, models):
    policy, rm = models
    res = rejection_sample(policy, rm, tok, EXS, k=5, max_new_tokens=6, seed=3)
    alone = torch.tensor([[score(rm, tok, [prompt_of(e)], [c]).item() for c in cs] for e, cs in zip(EXS, res.candidates)])   # (N, K)
    assert res.rewards.shape == alone.shape == (len(EXS), 5)
    assert torch.allclose(res.rewards, alone, atol=1e-4)
    assert res.picks == alone.argmax(1).tolist()
    for e, ex, cs, i in zip(res.kept, EXS, res.candidates, res.picks):
        assert e["messages"] == prompt_of(ex) + [{"role": "assistant", "content": cs[i]}]
        assert e["reward"] == pytest.approx(alone[EXS.index(ex), i].item(), abs=1e-4)
        assert (e["task"], e["answer"]) == (ex["task"], ex["answer"])
    assert res.stats["kept"] == len(EXS) and res.stats["mean_picked_reward"] >= res.stats["mean_reward"]

def test_random_pick_shares_the_samples(tok, models):
    policy, rm = models
    by_rm = rejection_sample(policy, rm, tok, EXS, k=4, max_new_tokens=4, seed=0)
    by_rand = rejection_sample(policy, rm, tok, EXS, k=4, max_new_tokens=4, seed=0, select="random")
    assert by_rand.candidates == by_rm.candidates and torch.equal(by_rand.rewards, by_rm.rewards)
    assert by_rand.stats["mean_picked_reward"] <= by_rm.stats["mean_picked_reward"]
    assert by_rand.picks == rejection_sample(policy, rm, tok, EXS, k=4, max_new_tokens=4, seed=0, select="random").picks

def test_threshold_that_nothing_passes_keeps_nothing(tok, models):
    policy, rm = models
    res = rejection_sample(policy, rm, tok, EXS, k=3, max_new_tokens=4, seed=0)
    top = res.rewards.max().item()
    none = rejection_sample(policy, rm, tok, EXS, k=3, max_new_tokens=4, seed=0, min_reward=top + 1)
    assert none.kept == [] and none.stats["kept"] == 0 and none.stats["prompts"] == len(EXS)
    some = rejection_sample(policy, rm, tok, EXS, k=3, max_new_tokens=4, seed=0, min_reward=top)
    assert [e["reward"] for e in some.kept] == [top]
    with pytest.raises(ValueError, match="nothing was kept"): rs_finetune(policy, tok, none.kept, SFTConfig(steps=1, warmup_steps=0))

def test_plain_dialogs_are_prompts(tok, models):
    policy, rm = models
    dialog = [{"role": "user", "content": "2+2?"}]
    res = rejection_sample(policy, rm, tok, [dialog], k=2, max_new_tokens=3)
    assert res.kept[0]["messages"][:-1] == dialog and "task" not in res.kept[0] and "pick_correct" not in res.stats

@pytest.mark.parametrize("kw,msg", [(dict(k=0), "k must be >= 1"), (dict(k=-2), "k must be >= 1"),
                                    (dict(k=2, select="best"), "select must be 'rm', 'verifier' or 'random'")])
def test_bad_arguments(tok, models, kw, msg):
    with pytest.raises(ValueError, match=msg): rejection_sample(*models, tok, EXS, **kw)

@pytest.mark.parametrize("prompts,msg", [([], "no prompts"), ([[]], "non-empty"), ([{"task": "add"}], "non-empty"),
                                         ([[{"role": "assistant", "content": "4"}]], "end with a user message"),
                                         (["2+2?"], "non-empty")])
def test_bad_prompts(tok, models, prompts, msg):
    with pytest.raises(ValueError, match=msg): rejection_sample(*models, tok, prompts, k=2)

def test_bench_counts_and_bad_input(tok, models):
    policy, _ = models
    b = bench_rejection(policy, [[tok.bos_id, 5, 6], [tok.bos_id, 7]], k=3, max_new_tokens=4, repeats=2)
    assert b["samples"] == 6 and b["paged_tokens"] == b["dense_tokens"] == 6 * 4      # no stop tokens: all run to the end
    assert b["ratio"] == pytest.approx(b["paged_samples_per_s"] / b["dense_samples_per_s"])
    for bad in (dict(prompts=[], k=2), dict(prompts=[[1]], k=0), dict(prompts=[[1]], k=2, repeats=0)):
        with pytest.raises(ValueError, match="need k >= 1"): bench_rejection(policy, **bad)

def test_verifier_keeps_exactly_the_passing_replies(tok, models, monkeypatch):
    "select='verifier': the first reply that passes its checker, prompts with none dropped; no reward model needed."
    import llama3_nb.rejection as R
    policy, _ = models
    exs = task_examples(2, "train", seed=0, tasks=["parity"])                   # answers 'even'/'odd'
    fixed = [["maybe", "even", "odd"], ["no", "nope", "nah"]]                   # first prompt: one of these passes
    monkeypatch.setattr(R, "sample_replies", lambda *a, **k: fixed)
    res = rejection_sample(policy, None, tok, exs, k=3, select="verifier")
    right = [[R.grade(e, c) for c in cs] for e, cs in zip(exs, fixed)]
    assert res.rewards.tolist() == [[float(x) for x in r] for r in right]
    assert [k["messages"][-1]["content"] for k in res.kept] == [cs[r.index(True)] for cs, r in zip(fixed, right) if any(r)]
    assert len(res.kept) == 1 and res.stats["oracle_correct"] == 0.5

def test_verifier_needs_task_examples_and_rm_arms_need_an_rm(tok, models):
    policy, _ = models
    with pytest.raises(ValueError, match="needs task examples"):
        rejection_sample(policy, None, tok, [[{"role": "user", "content": "hi"}]], k=2, max_new_tokens=2, select="verifier")
    with pytest.raises(ValueError, match="needs a reward model"):
        rejection_sample(policy, None, tok, EXS, k=2, max_new_tokens=2, select="rm")
