"""Shared bases: one mixture, three families, trained once, checked against a stated target."""

import dataclasses
import math

import pytest
import torch

from repro.bases import BASES, BaseTargetMissed, check_target, get_base, pretrain_base, pretrain_bases
from repro.config import ConfigError
from repro.pretraining import mixture_documents, objective_batches
from tests.conftest import use_scratch_cache


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    with pytest.MonkeyPatch.context() as mp:
        use_scratch_cache(mp, root)
        mp.setenv("REPRO_WORKERS", "1")
        yield root


@pytest.fixture(scope="module")
def smoke_bases(artifacts):
    return {b.spec.name: b for b in pretrain_bases("smoke")}


def test_a_character_cap_keeps_every_source_and_gives_the_rest_to_the_large_ones():
    parts = (("books", "validation"), ("tinystories", "train"))
    small = sum(map(len, mixture_documents(parts[1:])))
    docs = mixture_documents(parts, max_chars=small + 300_000)
    assert sum(map(len, docs)) == small + 300_000  # tinystories whole, the books the rest
    assert any(d in mixture_documents(parts[1:]) for d in docs)


def test_every_family_learns_past_its_target_and_is_evaluable_alone(smoke_bases):
    assert set(smoke_bases) == set(BASES["smoke"])
    for base in smoke_bases.values():
        assert base.reached and base.val_loss < math.log(base.spec.vocab_size)  # better than a uniform guess
        assert [t for t, _ in base.curve] == sorted(t for t, _ in base.curve) and len(base.curve) >= 2
        assert (base.dir / "checkpoint.pt").is_file() and (base.dir / "tokenizer").is_dir()
        model, tok = base.load()
        assert model.config.vocab_size == len(tok)


def test_a_base_is_trained_once_then_loaded(smoke_bases):
    spec = get_base("smoke", "decoder-L1d32")
    again = pretrain_base(spec)
    assert again.dir == smoke_bases[spec.name].dir and again.record == smoke_bases[spec.name].record


def test_lm_adaptation_continues_the_span_corruption_base_with_the_prefix_lm_objective(smoke_bases):
    from repro.bases import LM_ADAPT_STEPS, lm_adapted_base, lm_adapted_bases

    adapted = lm_adapted_bases("smoke")
    assert [b.spec.name for b in adapted] == ["encoder-decoder-L1d32", "encoder-decoder-L1d48"]  # smallest first
    for b in adapted:
        span = smoke_bases[b.spec.name]
        r = b.record
        assert r["objective"] == "prefix_lm" and r["steps"] == LM_ADAPT_STEPS["smoke"] and r["base"] == span.dir.name
        assert r["curve"][0] == [0, r["val_loss_before"]] and r["curve"][-1][1] == pytest.approx(b.val_loss)
        model, tok = b.load()
        span_model, _ = span.load()
        assert model.config == span_model.config and len(tok) == model.config.vocab_size
        span_weights = span_model.state_dict()
        assert model.state_dict().keys() == span_weights.keys()
        assert all(not torch.equal(w, span_weights[k]) for k, w in model.state_dict().items()
                   if k.endswith("weight") and w.dim() == 2)  # trained further: every matrix moved
    again = lm_adapted_base(adapted[0].spec)  # cached: the same directory and record, nothing trained
    assert again.dir == adapted[0].dir and again.record == adapted[0].record
    assert lm_adapted_base(adapted[0].spec, steps=3).dir != adapted[0].dir
    with pytest.raises(ConfigError, match="encoder-decoder bases"):
        lm_adapted_base(get_base("smoke", "decoder-L1d16"), steps=3)


def test_prefix_lm_batches_split_each_window_into_a_prefix_and_its_continuation(smoke_bases):
    from repro.pretraining import FAMILY, load_mixture

    spec = get_base("smoke", "encoder-decoder-L1d32")
    mixture = load_mixture(FAMILY[spec.family][2], spec.vocab_size, spec.max_chars)
    windows = objective_batches("decoder", mixture.train_ids, mixture.tokenizer, spec.block_size, 4, seed=3)(0)
    batch = objective_batches(spec.family, mixture.train_ids, mixture.tokenizer, spec.block_size, 4, 3, "prefix_lm")(0)
    eos, pad = mixture.tokenizer.eos_token_id, mixture.tokenizer.pad_token_id
    for row, window in enumerate(windows["input_ids"].tolist()):
        source = [t for t in batch["input_ids"][row].tolist() if t != pad]
        target = [t for t in batch["labels"][row].tolist() if t != -100]
        assert source[-1] == eos and target[-1] == eos
        assert source[:-1] + target[:-1] == window  # the window, cut once, nothing lost or added


def test_a_missed_target_fails_loudly_with_the_numbers_and_the_fix(smoke_bases):
    base = smoke_bases["encoder"]
    strict = dataclasses.replace(base, spec=dataclasses.replace(base.spec, target_loss=0.5))
    with pytest.raises(BaseTargetMissed, match=r"shared base encoder .* above its target 0.500 .*repro tune"):
        check_target(strict)
    with pytest.raises(ConfigError, match="no shared base 'decoder-huge'"):
        get_base("smoke", "decoder-huge")


def test_the_decoder_base_scores_through_the_harness(smoke_bases):
    from harness.lm import ReproLM

    lm = ReproLM(smoke_bases["decoder-L2d48"].dir)
    (logprob, _), = lm.loglikelihood([("Once upon a time", " there was")])
    assert logprob < 0


def test_objectives_are_pure_functions_of_the_step(smoke_bases):
    for name in ("encoder", "encoder-decoder-L1d48"):
        base = smoke_bases[name]
        _, tok = base.load()
        ids = torch.arange(5, 400) % (len(tok) - 40) + 5
        batches = objective_batches(base.spec.family, ids, tok, 16, 4, seed=3)
        a, b = batches(7), batches(7)
        assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["labels"], batches(8)["labels"])


def test_the_command_lists_the_bases_and_fails_on_a_missed_target(smoke_bases, capsys, monkeypatch):
    from repro_cli.main import main

    assert main(["bases", "--scale", "smoke"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BASES["smoke"]) and "MISSED" not in out
    strict = dataclasses.replace(BASES["smoke"]["encoder"], target_loss=0.5)
    monkeypatch.setitem(BASES["smoke"], "encoder", strict)  # a stricter spec is a new artifact: reuse the trained one
    monkeypatch.setattr("repro.bases.base_dir", lambda spec, seed, mixture: smoke_bases["encoder"].dir)
    assert main(["bases", "--scale", "smoke", "encoder"]) == 2
    assert "above its target 0.500" in capsys.readouterr().err


def test_a_gain_target_sits_that_far_below_the_unigram_model(smoke_bases):
    base = smoke_bases["decoder-L2d48"]
    unigram = base.record["unigram_val_loss"]
    gained = dataclasses.replace(base, spec=dataclasses.replace(base.spec, target_loss=math.inf, target_gain=0.25))
    assert gained.target == pytest.approx(unigram - 0.25)
    both = dataclasses.replace(gained, spec=dataclasses.replace(gained.spec, target_loss=unigram - 1.0))
    assert both.target == pytest.approx(unigram - 1.0)  # both bars hold: the stricter one decides
    assert dataclasses.replace(gained, record={**base.record, "val_loss": unigram - 0.2}).reached is False
    assert dataclasses.replace(gained, record={**base.record, "val_loss": unigram - 0.3}).reached is True


def test_every_cpu_base_states_a_target_and_its_family_shares_a_token_budget():
    cpu = BASES["cpu"].values()
    assert all(b.target_gain or math.isfinite(b.target_loss) for b in cpu)
    for family in ("decoder", "encoder-decoder"):
        assert len({b.tokens for b in cpu if b.family == family}) == 1  # a sweep differs in N alone


def test_the_record_keeps_curves_and_fits_the_decoders_alpha(smoke_bases, tmp_path):
    import json

    from harness.report import render
    from repro_cli.main import main

    assert main(["bases", "--scale", "smoke", "--record", "--root", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "bases" / "smoke.json").read_text())
    rows = {row["name"]: row for row in record["bases"]}
    assert set(rows) == set(BASES["smoke"])
    decoder = rows["decoder-L2d48"]
    assert decoder["curve"][-1][1] == pytest.approx(decoder["val_loss"]) and decoder["reached"]
    assert decoder["non_embedding_params"] < decoder["params"]
    fit = record["decoder_scaling"]
    assert fit["non_embedding_params"] == sorted(row["non_embedding_params"] for n, row in rows.items()
                                                  if n.startswith("decoder-"))
    assert math.isfinite(fit["alpha_N"]) and fit["kaplan_alpha_N"] == 0.076
    # the report draws a scale's bases (smoke's are skipped as meaningless): relabel the record
    (tmp_path / "bases" / "smoke.json").rename(tmp_path / "bases" / "cpu.json")
    (tmp_path / "bases" / "cpu.json").write_text(json.dumps({**record, "scale": "cpu"}))
    report = render(tmp_path).read_text()
    assert "## Shared bases — cpu scale" in report and "α_N" in report
    assert (tmp_path / "figures" / "bases_cpu.png").stat().st_size > 0


def test_recording_one_base_keeps_the_others_rows(smoke_bases, tmp_path):
    import json

    from repro_cli.main import main

    assert main(["bases", "--scale", "smoke", "--record", "--root", str(tmp_path)]) == 0
    path = tmp_path / "bases" / "smoke.json"
    before = json.loads(path.read_text())
    marked = {**before, "bases": [{**row, "val_loss": 99.0} for row in before["bases"]]}  # tell old rows from new
    path.write_text(json.dumps(marked))
    assert main(["bases", "encoder", "--scale", "smoke", "--record", "--root", str(tmp_path)]) == 0
    after = json.loads(path.read_text())
    assert [row["name"] for row in after["bases"]] == [row["name"] for row in before["bases"]]  # same rows, same order
    rows = {row["name"]: row for row in after["bases"]}
    assert rows["encoder"]["val_loss"] == pytest.approx(smoke_bases["encoder"].val_loss)  # re-recorded
    assert all(row["val_loss"] == 99.0 for name, row in rows.items() if name != "encoder")  # kept as they were


def test_repro_models_lists_the_bases_with_their_seed_and_tokenizer(smoke_bases, capsys):
    from repro.pipeline import list_artifacts
    from repro_cli.main import main

    listed = {a.dir: a for a in list_artifacts()}
    base = smoke_bases["encoder"]
    assert listed[base.dir].name == "base-encoder" and listed[base.dir].seed == 0 and listed[base.dir].has_tokenizer
    assert main(["models", "base-"]) == 0
    out = capsys.readouterr().out
    assert all(str(b.dir) in out for b in smoke_bases.values()) and "mixture" not in out


def test_a_base_sweep_trains_shortened_copies_and_records_the_chosen_point(smoke_bases, tmp_path, capsys):
    import json

    from repro.bases import tune_base
    from repro.tune import TuneGrid
    from repro_cli.main import main

    spec = get_base("smoke", "decoder-L1d32")
    grid = TuneGrid(lrs=(1e-3, 3e-2), warmup_fracs=(0.1,), batch_sizes=(8,))
    result = tune_base(spec, 8 * 64 * 20, grid)
    assert [p.steps for p in result.points] == [20, 20] and all(math.isfinite(p.mean_loss) for p in result.points)
    assert result.best is min(result.points, key=lambda p: p.mean_loss) and result.plot_path.stat().st_size > 0
    assert result.out_dir != smoke_bases[spec.name].dir and not result.cached
    again = tune_base(spec, 8 * 64 * 20, grid)
    assert again.cached and [p.val_losses for p in again.points] == [p.val_losses for p in result.points]
    recipes = tmp_path / "recipes.json"
    assert main(["tune", "--base", spec.name, "--scale", "smoke", "--tokens", str(8 * 64 * 20), "--lr", "1e-3", "3e-2",
                 "--warmup", "0.1", "--batch-size", "8", "--record", "smoke-decoder", "--recipes", str(recipes)]) == 0
    assert "loaded from the artifact cache" in capsys.readouterr().out
    row = json.loads(recipes.read_text())["smoke-decoder"]
    assert row["lr"] == result.best.lr and row["preset"] == "gpt2_small" and row["model"]["d_model"] == 32
    assert "| smoke-decoder | gpt2_small |" in recipes.with_suffix(".md").read_text()
    assert main(["tune", "gpt2_small", "--base", spec.name, "--tokens", "100"]) == 2  # a preset or a base, not both


def test_a_base_key_covers_what_defines_it_and_not_the_table_of_specs():
    from repro import pretraining
    from repro.pipeline import code_files

    files = {p.name for p in code_files([pretraining])}
    assert {"pretraining.py", "objectives.py", "train.py", "pipeline.py"} <= files
    assert "bases.py" not in files and "tune.py" not in files  # editing the table or a sweep retrains nothing


def test_every_scale_has_a_decoder_sweep_smallest_first():
    from repro.bases import decoder_bases

    for scale in BASES:
        sizes = decoder_bases(scale)
        assert len(sizes) >= 2 and all(s.family == "decoder" for s in sizes)
        assert [12 * s.n_layer * s.d_model**2 for s in sizes] == sorted({12 * s.n_layer * s.d_model**2 for s in sizes})


def test_the_encoder_base_exports_as_roformer_with_equal_logits(smoke_bases, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from repro_cli.main import main

    base, out = smoke_bases["encoder"], tmp_path / "bert"
    assert main(["export", str(base.dir), str(out)]) == 0
    theirs, tokenizer = AutoModelForMaskedLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    ours, ours_tok = base.load()
    enc = tokenizer("The cat sat on the mat.", return_tensors="pt")
    assert enc["input_ids"][0].tolist() == ours_tok("The cat sat on the mat.")["input_ids"]
    with torch.no_grad():
        mine = ours(enc["input_ids"], enc["attention_mask"], return_logits=True).logits
        torch.testing.assert_close(theirs(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits,
                                   mine, atol=1e-4, rtol=1e-4)


def test_the_encoder_decoder_base_exports_as_t5_that_lm_eval_scores_as_we_do(smoke_bases, tmp_path):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM as LmEvalHF
    from transformers import AutoModelForSeq2SeqLM

    from harness.lm import ReproLM
    from repro_cli.main import main

    base, out = smoke_bases["encoder-decoder-L1d48"], tmp_path / "t5"
    assert main(["export", str(base.dir), str(out)]) == 0
    assert type(AutoModelForSeq2SeqLM.from_pretrained(out)).__name__ == "T5ForConditionalGeneration"
    requests = [("Once upon a time", " there was a cat"), ("The dog", " ran home.")]
    theirs = LmEvalHF(pretrained=str(out), backend="seq2seq", device="cpu", batch_size=1, dtype="float32")
    lm_eval = theirs.loglikelihood([Instance("loglikelihood", {}, r, i) for i, r in enumerate(requests)])
    ours = ReproLM(base.dir, batch_size=2, precision="fp32").loglikelihood(requests)
    for (a, greedy_a), (b, greedy_b) in zip(ours, lm_eval):
        assert math.isclose(a, b, abs_tol=1e-3) and greedy_a == greedy_b
