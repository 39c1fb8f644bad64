"""Shared bases: one mixture, three families, trained once, checked against a stated target."""

import dataclasses
import math

import pytest
import torch

from repro.bases import (BASES, BaseTargetMissed, check_target, get_base, mixture_documents, objective_batches,
                         pretrain_base, pretrain_bases)
from repro.config import ConfigError


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_ARTIFACTS", str(root / "artifacts"))
        mp.setenv("REPRO_CACHE", str(root / "cache"))
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
