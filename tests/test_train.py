"""The training loop: accumulation equivalence, determinism, exact resume after SIGKILL, failure
behaviour, schedules."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from repro.config import ModelConfig
from repro.model import LanguageModel
from repro.train import Trainer, TrainConfig, TrainingError, average_snapshots, lr_multiplier, save_model, snapshots

REPO = Path(__file__).resolve().parents[1]


def tiny_model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return LanguageModel(ModelConfig(
        kind="decoder", vocab_size=50, n_layer=2, d_model=32, n_head=4, d_ff=64, max_seq_len=32,
        positions="learned", norm_placement="pre", dropout=dropout,
    ))


def random_batches(batch_size=8, T=12, seed=0, ragged=False):
    """Stateless: the batch is a pure function of the step (what exact resume relies on)."""

    def batch(step):
        g = torch.Generator().manual_seed(seed * 100_003 + step)
        ids = torch.randint(0, 50, (batch_size, T + 1), generator=g)
        labels = ids[:, 1:].clone()
        if ragged:  # uneven target counts per row: a mean-of-means would differ between 1x8 and 8x1
            for i in range(batch_size):
                labels[i, : i + 1] = -100
        return {"input_ids": ids[:, :-1], "labels": labels}

    return batch


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_grad_accumulation_1x8_equals_8x1(tmp_path):
    """Compared through plain SGD (update = -lr * grad), since Adam's first step divides by |g| and
    would magnify fp32 rounding in near-zero gradients into sign flips."""
    results = []
    for accum in (1, 8):
        model = tiny_model()
        cfg = TrainConfig(steps=1, batch_size=8, grad_accum=accum, grad_clip=0, schedule="constant", progress=False, precision="fp32")
        trainer = Trainer(model, cfg, random_batches(ragged=True), tmp_path / f"a{accum}")
        trainer.optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        before = _params(model)
        trainer.train_step(random_batches(ragged=True)(0))
        results.append(_params(model) - before)
    assert results[0].abs().max() > 1e-3  # the update is not trivially zero
    assert torch.allclose(results[0], results[1], atol=1e-6), (results[0] - results[1]).abs().max()


def test_same_seed_same_numbers_and_other_seed_differs(tmp_path):
    runs = []
    for i, seed in enumerate((0, 0, 1)):
        model = tiny_model(dropout=0.1)
        cfg = TrainConfig(steps=5, batch_size=4, lr=1e-2, seed=seed, log_every=1, progress=False)
        history = Trainer(model, cfg, random_batches(4), tmp_path / f"r{i}").fit()
        runs.append(([r["loss"] for r in history], _params(model)))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]


TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_train import tiny_model, random_batches
    from repro.train import Trainer, TrainConfig

    out, slow = sys.argv[1], float(sys.argv[2])
    model = tiny_model(dropout=0.1)  # dropout: the RNG state must survive the restart too
    cfg = TrainConfig(steps=24, batch_size=4, lr=1e-2, checkpoint_every=4, log_every=1, progress=False)
    batches = random_batches(4)

    def slow_batches(step):
        time.sleep(slow)
        return batches(step)

    Trainer(model, cfg, slow_batches, out).fit()
    torch.save(model.state_dict(), out + "/final.pt")
    """
)


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "train_script.py"
    script.write_text(TRAIN_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run([sys.executable, script, str(reference), "0"], check=True, env=env, timeout=300)

    proc = subprocess.Popen([sys.executable, script, str(killed), "0.15"], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill mid-run, after at least two checkpoints
        metrics = killed / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final.pt").exists(), "the run finished before it could be killed"
    subprocess.run([sys.executable, script, str(killed), "0"], check=True, env=env, timeout=300)

    a, b = torch.load(reference / "final.pt"), torch.load(killed / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (reference / "metrics.jsonl").read_text() == (killed / "metrics.jsonl").read_text()


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path):
    model = tiny_model()
    good = random_batches(4)

    def poisoned(step):
        batch = good(step)
        if step >= 3:
            with torch.no_grad():
                model.lm_head.proj.weight.fill_(float("nan"))
        return batch

    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-2, checkpoint_every=2, progress=False)
    with pytest.raises(TrainingError, match=r"loss became nan at step 4.*checkpoint\.pt"):
        Trainer(model, cfg, poisoned, tmp_path).fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_unwritable_output_directory_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TrainingError, match="not writable"):
        Trainer(tiny_model(), TrainConfig(steps=1, batch_size=2, progress=False), random_batches(2), blocker / "run")


def test_resume_with_a_different_config_is_refused(tmp_path):
    Trainer(tiny_model(), TrainConfig(steps=2, batch_size=2, progress=False), random_batches(2), tmp_path,
            run_config={"lr": 1}).fit()
    with pytest.raises(TrainingError, match="different configuration"):
        Trainer(tiny_model(), TrainConfig(steps=4, batch_size=2, progress=False), random_batches(2), tmp_path,
                run_config={"lr": 2}).fit()


def test_schedules_have_the_papers_shapes():
    vaswani = TrainConfig(schedule="inverse_sqrt", warmup_steps=4000, steps=100_000)
    lrs = [lr_multiplier(s, vaswani) for s in range(0, 20000, 500)]
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(1.0, abs=1e-3) and 3500 <= peak * 500 <= 4000
    assert lr_multiplier(15999, vaswani) == pytest.approx(0.5, rel=1e-3)  # 1/sqrt(4) past warm-up x4
    cosine = TrainConfig(schedule="cosine", warmup_steps=10, steps=110, min_lr_ratio=0.1)
    assert lr_multiplier(4, cosine) == pytest.approx(0.5)
    assert lr_multiplier(109, cosine) == pytest.approx(0.1)
    linear = TrainConfig(schedule="linear", warmup_steps=10, steps=110)
    assert lr_multiplier(59, linear) == pytest.approx(0.5)
    t5 = TrainConfig(schedule="rsqrt_constant_warmup", warmup_steps=10_000, steps=10**6)
    assert lr_multiplier(5000, t5) == 1.0 and lr_multiplier(39_999, t5) == pytest.approx(0.5)


def test_metrics_jsonl_and_checkpoint_are_written(tmp_path):
    cfg = TrainConfig(steps=4, batch_size=2, log_every=2, progress=False)
    Trainer(tiny_model(), cfg, random_batches(2), tmp_path).fit(eval_fn=lambda m: {"loss": 1.5})
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4] and records[-1]["eval_loss"] == 1.5
    assert not list(tmp_path.glob(".*tmp*")), "a temporary checkpoint file was left behind"


def test_snapshots_are_kept_and_their_average_is_the_mean_of_the_weights(tmp_path):
    cfg = TrainConfig(steps=6, batch_size=2, lr=1e-2, snapshot_every=2, progress=False)
    model = tiny_model()
    Trainer(model, cfg, random_batches(2), tmp_path).fit()
    kept = snapshots(tmp_path)
    assert [step for step, _ in kept] == [2, 4, 6]
    last = torch.load(kept[-1][1], weights_only=True)
    assert all(torch.equal(last[k], v) for k, v in model.state_dict().items())  # step 6 = final weights
    states = [torch.load(p, weights_only=True) for _, p in kept[-2:]]
    averaged = average_snapshots([p for _, p in kept[-2:]])
    name = "lm_head.proj.weight"
    assert not torch.equal(states[0][name], states[1][name])
    torch.testing.assert_close(averaged[name], (states[0][name] + states[1][name]) / 2)
    with pytest.raises(ValueError, match="snapshot_every"):
        average_snapshots([])


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, {tests!r})
    from test_train import tiny_model, random_batches
    from repro.train import Trainer, TrainConfig

    out = sys.argv[1]
    model = tiny_model()
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-2, log_every=1, progress=False, precision="fp32")
    history = Trainer(model, cfg, random_batches(8, ragged=True), out).fit()
    """
)


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(DDP_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, script, str(tmp_path / "single")], check=True, env=env, timeout=300)
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", script,
         str(tmp_path / "ddp")],
        check=True, env=env, timeout=300,
    )
    single = [json.loads(line)["loss"] for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    ddp = [json.loads(line)["loss"] for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(single) == len(ddp) == 4
    assert single == pytest.approx(ddp, rel=1e-5, abs=1e-6)


# ----------------------------------------------------------------------------------------------
# An auxiliary per-token term beside the task loss (GPT-1 §3.2: L3 = L2 + lambda * L1)

import torch.nn.functional as F  # noqa: E402

from repro.model.heads import ModelOutput  # noqa: E402
from repro.train import loss_terms, term_counts  # noqa: E402


class ClassifierWithAux(torch.nn.Module):
    """A sequence classifier that also returns its LM logits: what GPT-1 fine-tunes, reduced to
    what the loop sees."""

    def __init__(self):
        super().__init__()
        self.lm = tiny_model()
        self.config = self.lm.config
        self.head = torch.nn.Linear(32, 3)

    def forward(self, input_ids, attention_mask=None):
        out = self.lm(input_ids, attention_mask)
        return ModelOutput(logits=self.head(out.hidden[:, -1]), aux_logits=out.logits)


def aux_batches(batch_size=8, T=12, seed=0):
    def batch(step):
        g = torch.Generator().manual_seed(seed * 100_003 + step)
        ids = torch.randint(0, 50, (batch_size, T), generator=g)
        aux = torch.roll(ids, -1, dims=1)
        aux[:, -1] = -100
        for i in range(batch_size):  # uneven target counts per row, as padded sentences have
            aux[i, :i] = -100
        return {"input_ids": ids, "labels": torch.randint(0, 3, (batch_size,), generator=g), "aux_labels": aux}

    return batch


def test_aux_term_is_lambda_times_the_mean_token_loss_beside_the_task_loss():
    model, batch = ClassifierWithAux(), aux_batches()(0)
    terms, counts = loss_terms(model, batch, aux_weight=0.5), term_counts(batch)
    assert set(terms) == {"sequences", "aux_tokens"} and counts["aux_tokens"] == int((batch["aux_labels"] != -100).sum())
    out = model(batch["input_ids"])
    expected = F.cross_entropy(out.logits, batch["labels"]) + 0.5 * F.cross_entropy(
        out.aux_logits.reshape(-1, 50), batch["aux_labels"].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(sum(terms[k] / counts[k] for k in terms), expected)
    without = {k: v for k, v in batch.items() if k != "aux_labels"}  # no aux_labels: the loss is unchanged
    assert set(loss_terms(model, without)) == {"sequences"} and set(term_counts(without)) == {"sequences"}


def test_aux_term_accumulates_exactly_1x8_equals_8x1(tmp_path):
    results = []
    for accum in (1, 8):
        torch.manual_seed(0)
        model = ClassifierWithAux()
        cfg = TrainConfig(steps=1, batch_size=8, grad_accum=accum, grad_clip=0, schedule="constant", aux_weight=0.5,
                          progress=False, precision="fp32")
        trainer = Trainer(model, cfg, aux_batches(), tmp_path / f"a{accum}")
        trainer.optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        before = _params(model)
        trainer.train_step(aux_batches()(0))
        results.append(_params(model) - before)
    assert results[0].abs().max() > 1e-3
    assert torch.allclose(results[0], results[1], atol=1e-6), (results[0] - results[1]).abs().max()


def test_aux_labels_for_a_model_without_aux_logits_is_a_clear_error():
    batch = random_batches()(0)
    batch["aux_labels"] = batch["labels"]
    with pytest.raises(TrainingError, match="aux_logits"):
        loss_terms(tiny_model(), batch)


def test_mlm_scored_only_at_the_selected_positions_gives_the_same_logits_and_loss():
    from repro.model import MaskedLanguageModel

    config = ModelConfig(kind="encoder", vocab_size=50, n_layer=1, d_model=16, n_head=2, d_ff=32, max_seq_len=16,
                         positions="learned", n_segments=2, activation="gelu", dropout=0.0)
    torch.manual_seed(0)
    model = MaskedLanguageModel(config).eval()
    ids = torch.randint(5, 50, (3, 10))
    labels = torch.full_like(ids, -100)
    labels[:, [1, 4, 7]] = ids[:, [1, 4, 7]]
    batch = {"input_ids": ids, "labels": labels, "next_sentence_label": torch.tensor([0, 1, 0])}
    full = model(ids)
    selected = model(ids, predict_positions=labels != -100)
    assert selected.logits.shape == (9, 50)
    torch.testing.assert_close(selected.logits, full.logits[labels != -100])
    everywhere = loss_terms(model, batch)
    only_selected = loss_terms(model, {**batch, "predict_positions": labels != -100})
    assert everywhere.keys() == only_selected.keys() == {"tokens", "sequences"}
    for k in everywhere:
        torch.testing.assert_close(everywhere[k], only_selected[k])


def test_cpu_threads_pinned_kept_or_taken_from_free_cores(monkeypatch):
    from repro.config import ConfigError
    from repro.train import cpu_threads

    before, cores = torch.get_num_threads(), os.cpu_count() or 1
    try:
        torch.set_num_threads(cores)  # torch's default: nobody chose a count yet
        monkeypatch.setenv("REPRO_THREADS", "1")
        assert cpu_threads() == 1 and torch.get_num_threads() == 1
        if cores > 1:  # a count chosen by the caller (or a worker's share) stays, whatever the variable says
            monkeypatch.setenv("REPRO_THREADS", str(cores))
            assert cpu_threads() == 1
        torch.set_num_threads(cores)
        monkeypatch.setenv("REPRO_THREADS", "0")
        with pytest.raises(ConfigError, match="REPRO_THREADS=0"):
            cpu_threads()
        monkeypatch.delenv("REPRO_THREADS")
        assert 1 <= cpu_threads() <= cores  # free cores: at least one, at most all
    finally:
        torch.set_num_threads(before)


def test_a_trainer_given_the_tokenizer_leaves_an_artifact_the_harness_scores_on_its_own(tmp_path):
    from harness.lm import load_lm
    from repro.pipeline import list_artifacts
    from repro.tokenizers import train_tokenizer

    tok = train_tokenizer("bpe", ["the cat sat on the mat", "a dog ran in the park"] * 20, 300,
                          cache_dir=tmp_path / "tok-cache")
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(kind="decoder", vocab_size=len(tok), n_layer=1, d_model=16, n_head=2, d_ff=32,
                                      max_seq_len=32, positions="learned", norm_placement="pre", dropout=0.0))
    out = tmp_path / "artifacts" / "paper_stage_s0-0123456789abcdef"
    cfg = TrainConfig(steps=2, batch_size=2, log_every=2, progress=False)
    Trainer(model, cfg, lambda step: {"input_ids": torch.randint(0, len(tok), (2, 8)),
                                      "labels": torch.randint(0, len(tok), (2, 8))}, out, tokenizer=tok).fit()
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    lm = load_lm(out)  # the directory alone: no tokenizer passed
    [(logprob, _)] = lm.loglikelihood([("the cat", " sat")])
    assert logprob < 0
    [listed] = list_artifacts(tmp_path / "artifacts")
    assert listed.has_tokenizer and listed.seed == 0
    # a model trained outside the Trainer (PPO's policy) is saved the same way
    alone = save_model(model, tmp_path / "artifacts" / "ppo_s1-0123456789abcdef", tok)
    assert load_lm(alone).loglikelihood([("the cat", " sat")])[0][0] == pytest.approx(logprob, abs=1e-4)
