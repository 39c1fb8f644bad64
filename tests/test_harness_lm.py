"""The harness's LM interface (harness/lm.py) and its lm-eval bridge (harness/lm_eval_bridge.py).

One random GPT-2 (transformers) is the reference everywhere: saved to disk for HFLM, converted with
repro.model.convert.from_gpt2 for ReproLM, and written as a repro run directory for the "repro"
lm-eval model type. Its 32-token context makes rolling windows and left truncation happen on
short texts. What is proven:

(a) ReproLM == HFLM on loglikelihood (atol 1e-4, same greedy flags) and greedy generation, and
    both == lm-eval's own TemplateLM request handling over the transformers model: the lm-eval
    conventions are reproduced, not approximated;
(b) batch size and request order do not change any result;
(c) loglikelihood_rolling is the direct sum of per-token log-probs (one window or several);
(d) generate_until cuts at the first stop string and never exceeds max_gen_toks;
(e) encoder-decoder loglikelihood is the direct teacher-forced sum, and equals HF T5's;
(f) a 20-item multiple-choice scenario scored by our own argmax and through lm_eval.simple_evaluate
    (and lm-eval's command line) gives the same per-item log-likelihoods, acc and acc_norm.
"""

import json
import math
import os
import random
from pathlib import Path

import pytest
import torch
import transformers as hf

from harness.lm import HFLM, LM, ReproLM, load_lm
from repro.model import LanguageModel
from repro.model.convert import from_gpt2, from_t5
from repro.tokenizers import train_tokenizer
from repro.train import TrainConfig, Trainer

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval_tasks"
CONTEXT = 32  # the GPT-2's n_positions: small, so windows and truncation are exercised
TEXTS = [
    "the cat sat on the mat. the dog sat on the log.",
    "What is two plus two? Four. What is three plus three? Six.",
    "a bird in the hand is worth two in the bush!",
    "Question: Where does the sun rise?\nAnswer: in the east",
    "we breathe air, fish live in water, and birds use wings to fly.",
] * 20

REQUESTS = [
    ("the cat sat on the", " mat."),
    ("the cat sat on the ", "mat."),  # trailing space moves onto the continuation
    ("", "the dog sat on the log."),  # empty context: conditioned on the prefix token
    ("Question: What is two plus two?\nAnswer:", " four"),
    ("Question: What is two plus two?\nAnswer:", " five"),
    ("a bird in the hand", " is worth two in the bush!"),
    # context longer than the model: left-truncated to the last 32 + 1 tokens
    (" ".join(TEXTS[:4]), " and the dog sat on the log."),
    ("we breathe", " air"),
    ("x", "y"),
]


def _seeded_noise(model: torch.nn.Module, std: float) -> torch.nn.Module:
    # Move every weight off its init, so logits are far from uniform and greedy flags vary.
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)
    return model.eval()


@pytest.fixture(autouse=True, scope="module")
def fp32_scoring():
    """Parity with transformers and lm-eval is checked in fp32: ReproLM's default ("auto") scores
    under bf16 autocast on CPUs that have it, whose rounding depends on the batch's padding.
    `test_bf16_scoring_stays_close_to_fp32` covers that path."""
    before = os.environ.get("REPRO_PRECISION")
    os.environ["REPRO_PRECISION"] = "fp32"
    yield
    if before is None:
        del os.environ["REPRO_PRECISION"]
    else:
        os.environ["REPRO_PRECISION"] = before


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("harness_lm")


@pytest.fixture(scope="module")
def bpe(tmp):
    return train_tokenizer("bpe", TEXTS, 300, cache_dir=tmp / "tok-cache")


@pytest.fixture(scope="module")
def gpt2(bpe):
    torch.manual_seed(0)
    config = hf.GPT2Config(vocab_size=len(bpe), n_positions=CONTEXT, n_embd=32, n_layer=2, n_head=4,
                           bos_token_id=bpe.bos_token_id, eos_token_id=bpe.eos_token_id)
    return _seeded_noise(hf.GPT2LMHeadModel(config), 0.1)


@pytest.fixture(scope="module")
def hf_dir(tmp, gpt2, bpe):
    path = tmp / "gpt2"
    gpt2.save_pretrained(path)
    bpe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp, gpt2, bpe):
    """A repro run directory (checkpoint.pt + tokenizer/) written by the engine's own Trainer."""
    path = tmp / "run"
    trainer = Trainer(from_gpt2(gpt2), TrainConfig(steps=0, progress=False, device="cpu"), lambda step: {}, path)
    trainer.save_checkpoint()
    bpe.save_pretrained(path / "tokenizer")
    return path


@pytest.fixture(scope="module")
def ours(run_dir) -> ReproLM:
    return ReproLM(run_dir, batch_size=4)


@pytest.fixture(scope="module")
def theirs(hf_dir) -> HFLM:
    return HFLM(hf_dir, batch_size=3)


def _instances(args_list):
    from lm_eval.api.instance import Instance

    return [Instance("loglikelihood", {}, args, i) for i, args in enumerate(args_list)]


def _assert_same_scores(a, b, atol=1e-4):
    assert len(a) == len(b)
    for (la, ga), (lb, gb) in zip(a, b):
        assert math.isclose(la, lb, abs_tol=atol), (a, b)
        assert ga == gb, (a, b)


# ----------------------------------------------------------------------------------------------
# (a) parity: ReproLM, HFLM and lm-eval's own request handling


def test_load_lm_picks_the_backend_and_reports_model_facts(run_dir, hf_dir, gpt2, tmp):
    repro_lm, hf_lm = load_lm(run_dir), load_lm(hf_dir)
    assert isinstance(repro_lm, ReproLM) and isinstance(hf_lm, HFLM)
    assert repro_lm.max_length == hf_lm.max_length == CONTEXT
    assert repro_lm.num_parameters == hf_lm.num_parameters == sum(p.numel() for p in gpt2.parameters())
    assert repro_lm.name == "run" and hf_lm.name == "gpt2"
    assert repro_lm.tokenizer.eos_token == "<|endoftext|>" and not repro_lm.is_encoder_decoder
    with pytest.raises(FileNotFoundError, match="neither a repro run directory"):
        load_lm(tmp / "nothing-here")


def test_reprolm_and_hflm_give_the_same_loglikelihoods(ours, theirs, bpe):
    _assert_same_scores(ours.loglikelihood(REQUESTS), theirs.loglikelihood(REQUESTS))
    # Token-level pairs whose continuation IS the greedy output (decoding and re-encoding text
    # may re-segment it), next to perturbed ones, so both flag values are compared.
    prompts = [bpe(c, add_special_tokens=False)["input_ids"] for c in ("the cat sat", "What is")]
    greedy = ours._generate_ids(*_left_pad(prompts), 4, ours._gen_options({})).tolist()
    perturbed = [g[:-1] + [(g[-1] + 1) % len(bpe)] for g in greedy]
    pairs = list(zip(prompts, greedy)) + list(zip(prompts, perturbed))
    a = ours.score_tokens(pairs)
    _assert_same_scores(a, theirs.score_tokens(pairs))
    assert [flag for _, flag in a] == [True, True, False, False]


def _lm_eval_reference(model, tokenizer):
    """lm-eval's own request handling (TemplateLM: context/continuation split, trailing spaces,
    empty contexts) over a naive one-request-at-a-time scorer on the transformers model: the
    reference for our conventions. (lm-eval's "hf" model type would do, but needs `accelerate`.)"""
    from lm_eval.api.model import TemplateLM

    class Reference(TemplateLM):
        eot_token_id = tokenizer.eos_token_id

        def tok_encode(self, string, add_special_tokens=None, **kwargs):
            return tokenizer(string, add_special_tokens=bool(add_special_tokens))["input_ids"]

        @torch.no_grad()
        def _loglikelihood_tokens(self, requests, **kwargs):
            out = []
            for _, context, continuation in requests:
                inputs = (context + continuation)[-(CONTEXT + 1) :][:-1]
                logits = model(torch.tensor([inputs])).logits[0, len(inputs) - len(continuation) :]
                logprobs, target = logits.log_softmax(-1), torch.tensor(continuation)
                total = float(logprobs.gather(-1, target[:, None]).sum())
                out.append((total, bool((logprobs.argmax(-1) == target).all())))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError

    return Reference()


def test_the_lm_eval_conventions_are_reproduced(ours, gpt2, bpe):
    reference = _lm_eval_reference(gpt2, bpe)
    _assert_same_scores(ours.loglikelihood(REQUESTS), reference.loglikelihood(_instances(REQUESTS), disable_tqdm=True))


def test_greedy_generation_agrees_with_transformers_generate(ours, theirs):
    # Prompts of different lengths share a left-padded batch; other options form another batch.
    same = {"until": ["\n"], "max_gen_toks": 8}
    requests = [("the cat sat on", same), ("What is two plus", {"until": [], "max_gen_toks": 5}), ("a", same),
                ("Question: Where does the sun", same),
                ("Question:", {"max_gen_toks": 6, "do_sample": False, "temperature": 0.0})]
    assert ours.generate_until(requests) == theirs.generate_until(requests)


def test_generate_ids_is_generate_until_on_encoded_prompts(ours, theirs):
    contexts = ["the cat sat on", "a", "Question: Where does the sun"]
    options = {"until": ["\n"], "max_gen_toks": 8}
    ids = [ours.tok_encode(c) for c in contexts]
    expected = ours.generate_until([(c, options) for c in contexts])
    assert ours.generate_ids(ids, **options) == expected == theirs.generate_ids(ids, **options)
    with pytest.raises(ValueError, match="at least one token"):
        ours.generate_ids([[]])
    with pytest.raises(ValueError, match="unknown generation option"):
        ours.generate_ids(ids, beams=4)


def _left_pad(rows):
    width = max(map(len, rows))
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


# ----------------------------------------------------------------------------------------------
# (b) batching


def test_batch_size_and_request_order_do_not_change_results(run_dir):
    one, seven = ReproLM(run_dir, batch_size=1), ReproLM(run_dir, batch_size=7)
    requests = REQUESTS * 2
    _assert_same_scores(one.loglikelihood(requests), seven.loglikelihood(requests), atol=1e-5)
    shuffled = list(range(len(requests)))
    random.Random(0).shuffle(shuffled)
    reference = seven.loglikelihood(requests)
    reordered = seven.loglikelihood([requests[i] for i in shuffled])
    _assert_same_scores(reordered, [reference[i] for i in shuffled], atol=1e-5)
    texts = [TEXTS[0], " ".join(TEXTS[:6]), "", TEXTS[3]]
    assert one.loglikelihood_rolling(texts) == pytest.approx(seven.loglikelihood_rolling(texts), abs=1e-5)
    gen = [(t[:20], {"until": ["."], "max_gen_toks": 6}) for t in TEXTS[:5]]
    assert one.generate_until(gen) == seven.generate_until(gen)
    assert one.stats.requests == len(requests) + len(texts) + len(gen)
    assert one.loglikelihood([("the cat", ""), ("x", "y")])[0] == (0.0, True)  # nothing to predict
    assert seven.stats.batches < one.stats.batches


# ----------------------------------------------------------------------------------------------
# (c) loglikelihood_rolling


def _direct_logprobs(model: LanguageModel, inputs: list[int], targets: list[int]) -> float:
    """log p of `targets` predicted at the LAST len(targets) positions of one unpadded forward."""
    with torch.no_grad():
        logits = model(torch.tensor([inputs])).logits[0, len(inputs) - len(targets) :]
    return float(logits.log_softmax(-1).gather(-1, torch.tensor(targets)[:, None]).sum())


def test_rolling_is_the_direct_sum_of_token_logprobs(ours):
    model, eos = ours.model, ours.tokenizer.eos_token_id
    short = TEXTS[1]
    tokens = ours.tok_encode(short)
    assert len(tokens) < CONTEXT
    [(total, count)] = ours.loglikelihood_rolling_with_counts([short])
    assert count == len(tokens)
    assert total == pytest.approx(_direct_logprobs(model, [eos] + tokens[:-1], tokens), abs=1e-4)

    # Longer than the model: the first window starts from eos; each later one predicts the next
    # CONTEXT tokens given the one token before them; the last gets as much context as fits.
    long = " ".join(TEXTS[:7])
    tokens = ours.tok_encode(long)
    assert len(tokens) > 3 * CONTEXT
    stream = [eos] + tokens  # stream[i] predicts tokens[i]
    expected, start = 0.0, 0
    while start < len(tokens):
        end = min(start + CONTEXT, len(tokens))
        if end - start == CONTEXT:
            expected += _direct_logprobs(model, stream[start:end], tokens[start:end])
        else:  # a short last window: a full CONTEXT of history, only its last tokens scored
            expected += _direct_logprobs(model, stream[end - CONTEXT : end], tokens[start:end])
        start = end
    [(total, count)] = ours.loglikelihood_rolling_with_counts([long])
    assert count == len(tokens) and total == pytest.approx(expected, abs=1e-3)
    assert ours.loglikelihood_rolling(["", short]) == pytest.approx([0.0, ours.loglikelihood_rolling([short])[0]])


# ----------------------------------------------------------------------------------------------
# (d) generate_until


def test_generation_stops_at_the_stop_string_and_respects_max_gen_toks(ours):
    prompt = "the cat sat"
    free = ours.generate_until([(prompt, {"until": [], "max_gen_toks": 12})])[0]
    assert len(free) > 4
    stop = free[2:4]
    cut = ours.generate_until([(prompt, {"until": ["<never>", stop], "max_gen_toks": 12})])[0]
    assert cut == free[: free.index(stop)] and stop not in cut

    before = ours.stats.generated_tokens
    short = ours.generate_until([(prompt, {"until": [], "max_gen_toks": 3}), (" ".join(TEXTS), {"max_gen_toks": 3})])
    assert ours.stats.generated_tokens - before <= 6
    assert free.startswith(short[0])  # greedy: fewer tokens give a prefix of the same text
    # A prompt far beyond the context window is left-truncated instead of failing.
    assert isinstance(short[1], str)
    with pytest.raises(ValueError, match="unknown generation option"):
        ours.generate_until([(prompt, {"max_new_tokens": 3})])

    stats = ours.stats.as_dict()
    assert stats["tokens_per_second"] > 0 and stats["seconds_per_request"] > 0


def test_sampling_is_seeded(ours):
    options = {"until": [], "max_gen_toks": 8, "do_sample": True, "temperature": 1.5, "seed": 3}
    first = ours.generate_until([("the cat", options)])
    assert ours.generate_until([("the cat", options)]) == first


# ----------------------------------------------------------------------------------------------
# (e) encoder-decoder


@pytest.fixture(scope="module")
def t5_pair(tmp):
    tok = train_tokenizer("unigram", TEXTS, 200, n_sentinels=0, cache_dir=tmp / "tok-cache")
    torch.manual_seed(0)
    config = hf.T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                         decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    ref = _seeded_noise(hf.T5ForConditionalGeneration(config), 0.1)
    return ReproLM(from_t5(ref).eval(), tok, batch_size=3), HFLM(ref, tok, batch_size=2), ref


def test_encoder_decoder_loglikelihood_is_the_direct_teacher_forced_sum(t5_pair):
    lm, hf_lm, _ = t5_pair
    model, tok = lm.model, lm.tokenizer
    requests = [("the cat sat on the", " mat."), ("What is two plus two?", " Four."), ("", "a bird"),
                ("we breathe ", "air")]
    got = lm.loglikelihood(requests)
    for (context, continuation), (logprob, _) in zip(requests, got):
        n = len(context) - len(context.rstrip())
        context, continuation = context[: len(context) - n], context[len(context) - n :] + continuation
        src = tok(context)["input_ids"] if context else [tok.eos_token_id]  # T5 appends </s>
        target = tok(continuation, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            decoder_input = torch.tensor([[tok.pad_token_id] + target[:-1]])
            logits = model(torch.tensor([src]), decoder_input_ids=decoder_input).logits
        direct = float(logits[0].log_softmax(-1).gather(-1, torch.tensor(target)[:, None]).sum())
        assert logprob == pytest.approx(direct, abs=1e-4)
    _assert_same_scores(got, hf_lm.loglikelihood(requests))
    gen = [("the cat sat", {"until": ["."], "max_gen_toks": 6}), ("What is", {"max_gen_toks": 4})]
    assert lm.generate_until(gen) == hf_lm.generate_until(gen)
    with pytest.raises(NotImplementedError, match="encoder-decoder"):
        lm.loglikelihood_rolling(["the cat"])


# ----------------------------------------------------------------------------------------------
# (f) a multiple-choice scenario: our own scoring vs lm-eval


TASK = "repro_toy_mc"


@pytest.fixture(scope="module")
def task_dir(tmp):
    """The task YAML, with the jsonl's absolute path filled in (lm-eval resolves data_files from cwd)."""
    path = tmp / "tasks"
    path.mkdir()
    (path / f"{TASK}.yaml").write_text(f"""\
task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {FIXTURES / 'toy_mc.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""")
    return path


def _docs():
    return [json.loads(line) for line in (FIXTURES / "toy_mc.jsonl").read_text().splitlines()]


def _our_multiple_choice(lm: LM) -> dict:
    """The scenario computed by the harness alone: argmax of choice log-likelihoods."""
    docs = _docs()
    requests = [(f"Question: {d['question']}\nAnswer:", f" {c}") for d in docs for c in d["choices"]]
    lls = iter(ll for ll, _ in lm.loglikelihood(requests))
    per_doc, acc, acc_norm = [], [], []
    for d in docs:
        scores = [next(lls) for _ in d["choices"]]
        per_doc.append(scores)
        acc.append(max(range(len(scores)), key=lambda i: (scores[i], -i)) == d["gold"])
        normed = [s / len(c) for s, c in zip(scores, d["choices"])]
        acc_norm.append(max(range(len(normed)), key=lambda i: (normed[i], -i)) == d["gold"])
    return {"acc": sum(acc) / len(acc), "acc_norm": sum(acc_norm) / len(acc_norm), "lls": per_doc}


def _lm_eval(model, task_dir, **kwargs) -> tuple[dict, list]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(task_dir), include_defaults=False)
    out = lm_eval.simple_evaluate(model=model, tasks=[TASK], task_manager=tasks, log_samples=True,
                                  bootstrap_iters=0, **kwargs)
    samples = sorted(out["samples"][TASK], key=lambda s: s["doc_id"])
    return out["results"][TASK], [[float(r[0]) for r in s["filtered_resps"]] for s in samples]


def test_multiple_choice_accuracy_is_the_same_through_lm_eval(run_dir, ours, task_dir, gpt2, bpe):
    import harness.lm_eval_bridge  # noqa: F401  registers "repro"

    mine = _our_multiple_choice(ours)
    results, lls = _lm_eval("repro", task_dir, model_args=f"checkpoint={run_dir},batch_size=5")
    assert len(lls) == 20
    for a, b in zip(lls, mine["lls"]):
        assert a == pytest.approx(b, abs=1e-5)  # another batch size: float sums in another order
    assert results["acc,none"] == pytest.approx(mine["acc"])
    assert results["acc_norm,none"] == pytest.approx(mine["acc_norm"])
    # lm-eval's request handling over the transformers model scores the same (independent code path).
    ref_results, ref_lls = _lm_eval(_lm_eval_reference(gpt2, bpe), task_dir)
    for a, b in zip(ref_lls, mine["lls"]):
        assert a == pytest.approx(b, abs=1e-4)
    assert (ref_results["acc,none"], ref_results["acc_norm,none"]) == pytest.approx((mine["acc"], mine["acc_norm"]))


def test_an_lm_instance_and_the_command_line_work_too(ours, run_dir, task_dir, tmp, monkeypatch):
    from harness.lm_eval_bridge import LMEvalAdapter, main

    mine = _our_multiple_choice(ours)
    results, _ = _lm_eval(LMEvalAdapter(ours), task_dir)
    assert results["acc,none"] == pytest.approx(mine["acc"])

    out = tmp / "cli-out"
    main(["run", "--model", "repro", "--model_args", f"checkpoint={run_dir},batch_size=8", "--tasks", TASK,
          "--include_path", str(task_dir), "--output_path", str(out)])
    [result_file] = out.rglob("results_*.json")
    cli = json.loads(result_file.read_text())["results"][TASK]
    assert (cli["acc,none"], cli["acc_norm,none"]) == pytest.approx((mine["acc"], mine["acc_norm"]))


def test_bf16_scoring_stays_close_to_fp32(run_dir):
    """Under bf16 autocast the body runs in bf16 but the logits leave the head in fp32, so a
    continuation's log-probability moves by rounding only, far less than a nat."""
    exact, fast = ReproLM(run_dir, batch_size=4, precision="fp32"), ReproLM(run_dir, batch_size=4, precision="bf16")
    assert (exact.precision, fast.precision) == ("fp32", "bf16")
    requests = [("The cat sat on the", " mat"), ("Once upon a", " time there was"), ("A", " b c d e f")]
    for (a, _), (b, _) in zip(exact.loglikelihood(requests), fast.loglikelihood(requests)):
        assert a != b and abs(a - b) < 0.1 * max(1.0, abs(a)) ** 0.5
    with fast._autocast():
        ids = torch.tensor([fast.tok_encode("The cat sat")])
        assert fast._causal_logits(ids, torch.ones_like(ids)).dtype == torch.float32


def test_the_bridge_takes_a_tokenizer_directory_as_lm_eval_passes_it(run_dir, tmp):
    """`--model_args checkpoint=DIR,tokenizer=TOKDIR` hands the tokenizer over as a string."""
    from harness.lm_eval_bridge import ReproLMEval

    bridged = ReproLMEval(checkpoint=str(run_dir), tokenizer=str(run_dir / "tokenizer"), precision="fp32")
    assert bridged.eot_token_id == ReproLM(run_dir).eot_token_id and bridged.lm.precision == "fp32"
    with pytest.raises(FileNotFoundError, match="tokenizer directory .* does not exist"):
        ReproLMEval(checkpoint=str(run_dir), tokenizer=str(tmp / "nowhere"))
