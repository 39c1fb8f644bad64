"""The recurrent baselines: they train through the shared Trainer, decode through `generate`, and
their padding handling changes nothing."""

import torch

from repro.generate import GenerationConfig, generate
from repro.model.recurrent import RecurrentConfig, RecurrentLM, RecurrentSeq2Seq
from repro.train import Trainer, TrainConfig


def seq2seq(cell="gru"):
    torch.manual_seed(0)
    return RecurrentSeq2Seq(RecurrentConfig(vocab_size=30, cell=cell, d_model=16, d_hidden=16, dropout=0.0))


def copy_batches(step, n=16, T=6):
    g = torch.Generator().manual_seed(step)
    src = torch.randint(3, 30, (n, T), generator=g)
    labels = torch.cat([src, torch.full((n, 1), 2)], 1)  # copy, then eos=2
    dec = torch.cat([torch.zeros(n, 1, dtype=torch.long), labels[:, :-1]], 1)
    return {"input_ids": src, "decoder_input_ids": dec, "labels": labels}


def test_seq2seq_learns_to_copy_and_beam_one_equals_greedy(tmp_path):
    model = seq2seq()
    Trainer(model, TrainConfig(steps=200, batch_size=16, lr=1e-2, schedule="constant", progress=False),
            copy_batches, tmp_path).fit()
    src = copy_batches(999)["input_ids"][:4]
    greedy = generate(model, src, config=GenerationConfig(max_new_tokens=7, eos_id=2))
    beam1 = generate(model, src, config=GenerationConfig(max_new_tokens=7, eos_id=2, method="beam", num_beams=1, length_penalty=0.0))
    assert torch.equal(greedy, beam1)
    assert (greedy[:, :6] == src).float().mean() > 0.8  # an untrained model copies ~1/27


def test_seq2seq_source_padding_changes_nothing():
    model = seq2seq("lstm").eval()
    src = torch.randint(3, 30, (2, 5))
    dec = torch.randint(3, 30, (2, 4))
    padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(2, 5), torch.zeros(2, 3)], 1).long()
    a = model(src, decoder_input_ids=dec).logits
    b = model(padded, mask, decoder_input_ids=dec).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_recurrent_lm_is_causal_and_left_padding_changes_nothing():
    torch.manual_seed(0)
    model = RecurrentLM(RecurrentConfig(kind="decoder", cell="lstm", vocab_size=30, d_model=16, d_hidden=24, dropout=0.0)).eval()
    ids = torch.randint(0, 30, (1, 8))
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % 30
    a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :5], b[:, :5])
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    mask = torch.cat([torch.zeros(1, 3), torch.ones(1, 8)], 1).long()
    both = torch.cat([left, torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)])
    both_mask = torch.cat([mask, mask.flip(1)])
    out = model(both, both_mask).logits
    torch.testing.assert_close(out[0, 3:], a[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1, :8], a[0], rtol=1e-5, atol=1e-5)


def test_lstm_models_train_under_cpu_bf16_autocast():
    # torch's CPU LSTM kernel refuses bf16 autocast ("could not create a primitive descriptor");
    # the models run their LSTMs in fp32 there, and a GRU stays in bf16.
    torch.manual_seed(0)
    lm = RecurrentLM(RecurrentConfig(kind="decoder", cell="lstm", vocab_size=30, d_model=16, d_hidden=24, dropout=0.0))
    ids = torch.randint(0, 30, (2, 8))
    for model, inputs in [(lm, {"input_ids": ids, "labels": ids}),
                          (seq2seq("lstm"), copy_batches(0, n=2)), (seq2seq("gru"), copy_batches(0, n=2))]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**inputs).loss
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
