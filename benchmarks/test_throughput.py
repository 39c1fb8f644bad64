"""Throughput of our models against transformers' at identical configs, batches and weights.

Not part of the default test run: `tox -e bench` (or `pytest benchmarks --benchmark-only`).
Each family is measured for training (forward + backward + AdamW step) and scoring (forward
without gradients); `benchmarks/report.py` turns the saved JSON into tokens/s and the ratio
ours / reference, measured in the same run.

Both models get the same batch, called the way their trainers call them: `model(**batch).loss`.
The batch is each family's pre-training batch: every position labelled for GPT-2 and T5, BERT's
15% of masked positions for BERT (the rest -100). Before timing, the two losses must agree, so a
faster "ours" cannot come from computing something else.

Each pair runs in two precisions: fp32, and bf16 autocast (`torch.autocast("cpu", bfloat16)`
around the forward of both models, weights and optimizer fp32), which is what our trainer's
default precision does on CPUs that multiply bf16 natively.
"""

import time

import pytest
import torch
import transformers as hf

from repro.model import convert

BATCH, SEQ, VOCAB = 8, 128, 8192
MASKED = 0.15  # BERT §3.1: the share of positions with an MLM target
ROUNDS, WARMUP = 20, 2
PRECISIONS = ("fp32", "bf16")
BF16_LOSS_ATOL = 0.05  # bf16 rounds activations to ~3 digits: the two losses agree this closely, not to fp32's


def gpt2():
    ref = hf.GPT2LMHeadModel(hf.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=256, n_layer=4, n_head=4,
                                           resid_pdrop=0, embd_pdrop=0, attn_pdrop=0))
    return ref, convert.from_gpt2(ref)


def bert():
    ref = hf.BertForMaskedLM(hf.BertConfig(vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                           intermediate_size=1024, max_position_embeddings=SEQ,
                                           hidden_dropout_prob=0, attention_probs_dropout_prob=0))
    return ref, convert.from_bert(ref)


def t5():
    ref = hf.T5ForConditionalGeneration(hf.T5Config(vocab_size=VOCAB, d_model=256, d_kv=64, d_ff=1024, num_layers=4,
                                                    num_heads=4, dropout_rate=0))
    return ref, convert.from_t5(ref)


FAMILIES = {"gpt2": gpt2, "bert": bert, "t5": t5}


def make_inputs(family, impl):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    labels = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    if family == "t5":
        return {"input_ids": ids, "decoder_input_ids": labels, "labels": labels}
    if family == "bert":
        labels[torch.rand(BATCH, SEQ, generator=g) >= MASKED] = -100
    if family == "gpt2" and impl == "ours":
        # transformers' GPT-2 shifts the labels inside; ours takes them shifted: the same targets.
        labels = torch.cat([labels[:, 1:], torch.full((BATCH, 1), -100)], dim=1)
    return {"input_ids": ids, "labels": labels}


def autocast(precision):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def make_step(model, inputs, mode, precision="fp32"):
    if mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            with autocast(precision):
                loss = model(**inputs).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step
    model.eval()
    scoring = {k: v for k, v in inputs.items() if k != "labels"}

    def step():
        with torch.no_grad(), autocast(precision):
            model(**scoring)

    return step


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("mode", ["train", "score"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_throughput(benchmark, family, mode, precision):
    """One benchmark round is one step of each implementation, back to back, the first one
    alternating: on a shared 2-core machine the speed drifts by 10-20% over a minute, and pairing
    the two steps of a round cancels the drift that separate benchmarks would read as a ratio."""
    torch.manual_seed(0)
    ref, ours = FAMILIES[family]()
    with torch.no_grad():
        torch.testing.assert_close(ours(**make_inputs(family, "ours")).loss, ref(**make_inputs(family, "reference")).loss)
        if precision == "bf16":
            with autocast(precision):
                torch.testing.assert_close(ours(**make_inputs(family, "ours")).loss.float(),
                                           ref(**make_inputs(family, "reference")).loss.float(), rtol=0, atol=BF16_LOSS_ATOL)
    steps = {impl: make_step(model, make_inputs(family, impl), mode, precision)
             for impl, model in (("ours", ours), ("reference", ref))}
    seconds = {impl: [] for impl in steps}

    def paired_round():
        order = list(steps) if len(seconds["ours"]) % 2 == 0 else list(steps)[::-1]
        for impl in order:
            start = time.perf_counter()
            steps[impl]()
            seconds[impl].append(time.perf_counter() - start)

    benchmark.pedantic(paired_round, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    benchmark.extra_info.update({
        "family": family, "mode": mode, "precision": precision, "tokens": BATCH * SEQ * (2 if family == "t5" else 1),
        "seconds": {impl: times[WARMUP:] for impl, times in seconds.items()},
    })
