"""Instruction data for FLAN and T0, declared into the one task registry (``repro.data.tasks``).

Three families of tasks are registered here, each a :class:`~repro.data.tasks.Task` that serves
both training mixtures (``Mixture``) and harness scenarios (``harness.scenarios``):

* ``flan/<dataset>`` — the mirror's datasets (GLUE's RTE, WNLI, QNLI, SST-2, MRPC, CoLA; Multi30k
  en-de; XSum) re-declared with FLAN-style templates written for this project: ten per dataset,
  the scored ones ending in an ``OPTIONS:`` list of the answer strings (classification; scored by
  rank classification over those strings), three that "turn the task around" (``Template.target``:
  write the input given the label, or the question given its answer), which only train. The
  record, splits and preprocessing are those of the registry's plain task (``get_task("rte")``),
  extended with the fields the templates read; the cluster is FLAN's (NLI, sentiment, paraphrase,
  misc, translation, summarization).
* ``rg/<family>`` — procedural tasks of the ``reasoning-gym`` package (pinned: ``RG_VERSION``),
  generated offline from a seed: a "train" split (seed ``RG_TRAIN_SEED``) and a "test" split (seed
  ``RG_TEST_SEED``; an item whose question also occurs in train is not scored). Each item is a
  multiple-choice record whose choices are its gold answer and answers of other items of the same
  family that reasoning-gym's own scorer rejects; ``Task.is_correct`` is that scorer (generation
  protocol). The cluster is reasoning-gym's own grouping (the package's module: arithmetic,
  algorithmic, logic, algebra, graphs).
* ``p3/<dataset>_<prompt>`` — the T0 training mixture sample (``t0_p3_50k/``: one file per
  dataset x PromptSource prompt, already rendered), as generation tasks whose one template is the
  file's prompt; the cluster is T0's task type of the dataset (``P3_TASK_TYPE``).

``flan_mixture(...)`` builds FLAN's examples-proportional mixture with a cap over whole clusters,
leaving held-out clusters out; ``flan_training_text(...)`` renders one (prompt, answer) pair per
draw with a template drawn per example (or the "no template" / "dataset name" ablations of FLAN's
Fig. 8).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from repro.data.tasks import Mixture, Record, Task, Template, get_task, list_tasks, register

__all__ = [
    "FLAN_CLUSTERS",
    "FLAN_DATASETS",
    "P3_TASK_TYPE",
    "RG_CLUSTERS",
    "RG_VERSION",
    "flan_clusters",
    "flan_mixture",
    "flan_pair",
    "flan_tasks",
    "options_in",
    "rg_dataset",
    "rg_score",
    "scored_templates",
    "turned_templates",
]

RG_VERSION = "0.1.25"  # pyproject pins reasoning-gym==0.1.25 (the latest on PyPI, Python 3.11)
# reasoning-gym seeds item i with (seed + i): splits need seeds further apart than their sizes
RG_TRAIN_SEED, RG_TEST_SEED = 1_000, 9_000_000
RG_SIZES = {"train": 1000, "test": 300}
RG_OPTIONS = 4  # answer options per reasoning-gym item (fewer where the family has fewer answers)


# ============================================================================================
# FLAN templates over the mirror's datasets (the project's own wording)


def _T(name: str, body: str, cue: str = "Answer:") -> Template:
    """A scored template: the body, then FLAN's OPTIONS suffix, then an answer cue."""
    return Template(name, f"{body}\nOPTIONS:\n{{options_block}}\n{cue}")


def _turn(name: str, prompt: str, target: str) -> Template:
    """A template that turns the task around (trains only; `target` is what the model writes)."""
    return Template(name, prompt, target=target.lstrip())  # `verbalize` adds the leading space


def _nli_templates(p: str = "sentence1", h: str = "sentence2") -> tuple[Template, ...]:
    return (
        _T("premise_hypothesis", f"Premise: {{{p}}}\nHypothesis: {{{h}}}\nDoes the premise entail the hypothesis?"),
        _T("does_it_follow", f"{{{p}}}\n\nBased on the text above, is it true that \"{{{h}}}\"?"),
        _T("can_we_conclude", f"Read this: {{{p}}}\nCan we conclude that {{{h}}}?", "A:"),
        _T("claim_check", f"Someone said: \"{{{p}}}\" A friend then claims: \"{{{h}}}\" Is the friend's claim "
                          "supported by what was said?"),
        _T("truth_question", f"Given that {{{p}}}, must it also be the case that {{{h}}}?", "The answer is"),
        _T("passage_statement", f"Passage:\n{{{p}}}\n\nStatement:\n{{{h}}}\n\nIs the statement implied by the passage?"),
        _T("entailment_task", f"Decide whether the second sentence follows from the first.\nFirst: {{{p}}}\n"
                              f"Second: {{{h}}}", "Decision:"),
        _turn("write_entailed", f"Write a sentence that {{follow_word}} from this one.\n{{{p}}}\nSentence:",
              f" {{{h}}}"),
        _turn("write_premise", f"Write a short text from which it {{follow_word}} that \"{{{h}}}\".\nText:",
              f" {{{p}}}"),
        _turn("generate_hypothesis", f"{{{p}}}\nWhat is a statement that {{follow_word}} from the text above?",
              f" {{{h}}}"),
    )


def _qnli_templates() -> tuple[Template, ...]:
    return (
        _T("does_answer", "Question: {sentence1}\nSentence: {sentence2}\nDoes the sentence answer the question?"),
        _T("contains_answer", "Does the passage \"{sentence2}\" contain the answer to \"{sentence1}\"?"),
        _T("helpful", "I want to know: {sentence1}\nIs this helpful? {sentence2}", "A:"),
        _T("responds", "{sentence2}\n\nDoes the text above respond to the question \"{sentence1}\"?"),
        _T("search_result", "A search for \"{sentence1}\" returned: \"{sentence2}\" Does the result answer it?",
           "The answer is"),
        _T("qa_check", "Q: {sentence1}\nCandidate answer sentence: {sentence2}\nIs the question answered?"),
        _T("relevant", "Is the following sentence enough to answer the question?\nQuestion: {sentence1}\n"
                       "Sentence: {sentence2}", "Decision:"),
        _turn("ask_question", "Write a question that this sentence {answers_word} answer.\n{sentence2}\nQuestion:",
              " {sentence1}"),
        _turn("write_answer_sentence", "Write a sentence that {answers_word} answer the question: {sentence1}\n"
                                       "Sentence:", " {sentence2}"),
        _turn("question_for_text", "{sentence2}\nWhat question {answers_word} answered by the text above?",
              " {sentence1}"),
    )


def _sst2_templates() -> tuple[Template, ...]:
    return (
        _T("sentiment", "{sentence}\nWhat is the sentiment of this review?"),
        _T("how_feel", "Review: \"{sentence}\"\nHow does the reviewer feel about the movie?"),
        _T("positive_or_negative", "Is this movie review positive or negative?\n{sentence}", "A:"),
        _T("tone", "What tone does the following sentence have?\n\"{sentence}\""),
        _T("classify", "Classify the sentiment of the text.\nText: {sentence}", "Sentiment:"),
        _T("critic", "A critic wrote: {sentence}\nDid the critic like the film?", "The answer is"),
        _T("opinion", "{sentence}\n\nIs the opinion expressed above favourable or not?"),
        _turn("write_review", "Write a {label_word} sentence about a movie.\nSentence:", " {sentence}"),
        _turn("generate_review", "Generate a short movie review that is {label_word}.", " {sentence}"),
        _turn("compose", "Compose one line a {label_word} film critic might write.\nLine:", " {sentence}"),
    )


def _mrpc_templates() -> tuple[Template, ...]:
    return (
        _T("same_meaning", "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nDo these sentences mean the same thing?"),
        _T("paraphrase", "Is \"{sentence2}\" a paraphrase of \"{sentence1}\"?"),
        _T("equivalent", "{sentence1}\n{sentence2}\nAre the two sentences above equivalent?", "A:"),
        _T("restate", "Does the second sentence restate the first?\nFirst: {sentence1}\nSecond: {sentence2}"),
        _T("say_same", "Do \"{sentence1}\" and \"{sentence2}\" say the same thing?", "The answer is"),
        _T("reworded", "Here is a sentence: {sentence1}\nHere is another: {sentence2}\nIs the second just a "
                       "rewording of the first?"),
        _T("semantic", "Determine whether the two sentences are semantically equivalent.\nA: {sentence1}\n"
                       "B: {sentence2}", "Decision:"),
        _turn("write_paraphrase", "Write a sentence that {same_word} mean the same as: {sentence1}\nSentence:",
              " {sentence2}"),
        _turn("rewrite", "{sentence2}\nWrite another sentence that {same_word} say the same thing.", " {sentence1}"),
        _turn("generate_pair", "Give a sentence that {same_word} paraphrase this one: {sentence2}", " {sentence1}"),
    )


def _cola_templates() -> tuple[Template, ...]:
    return (
        _T("acceptable", "{sentence}\nIs this sentence grammatically acceptable?"),
        _T("correct_english", "Is the following sentence correct English?\n\"{sentence}\""),
        _T("grammar_check", "Check the grammar: {sentence}\nIs it grammatical?", "A:"),
        _T("native", "Would a native speaker accept the sentence \"{sentence}\"?"),
        _T("well_formed", "Sentence: {sentence}\nIs this sentence well formed?", "The answer is"),
        _T("linguist", "A linguist reads: {sentence}\nDoes the linguist judge it acceptable?"),
        _T("judge", "Judge whether the sentence follows the rules of English grammar.\n{sentence}", "Judgement:"),
        _turn("write_sentence", "Write an English sentence that is {grammatical_word}.\nSentence:", " {sentence}"),
        _turn("example", "Give an example of a {grammatical_word} sentence.", " {sentence}"),
        _turn("produce", "Produce one sentence a grammar teacher would call {grammatical_word}.", " {sentence}"),
    )


def _translation_templates() -> tuple[Template, ...]:
    def g(name: str, prompt: str) -> Template:
        return Template(name, prompt)

    return (
        g("translate", "Translate to German:\n{en}\nGerman:"),
        g("english_german", "English: {en}\nGerman:"),
        g("how_say", "How do you say \"{en}\" in German?\n"),
        g("render", "Render this sentence in German: {en}\n"),
        g("german_version", "{en}\n\nWhat is the German version of the sentence above?\n"),
        g("translator", "You are a translator. Translate from English into German.\n{en}\n"),
        g("in_german", "Say it in German: {en}\n"),
        _turn("to_english", "Translate to English:\n{de}\nEnglish:", " {en}"),
        _turn("german_english", "German: {de}\nEnglish:", " {en}"),
        _turn("what_means", "What does \"{de}\" mean in English?\n", " {en}"),
    )


def _summary_templates() -> tuple[Template, ...]:
    g = Template
    return (
        g("summarize", "Summarize the article in one sentence.\n\n{document}\n\nSummary:"),
        g("tldr", "{document}\n\nTL;DR:"),
        g("short_version", "{document}\n\nWhat is a one-sentence version of the text above?\n"),
        g("headline_sentence", "Article: {document}\nWrite a one-sentence summary:"),
        g("gist", "Give the gist of this news story.\n{document}\nGist:"),
        g("brief", "{document}\n\nBriefly, the article says:"),
        g("key_point", "What is the key point of the following article?\n{document}\n"),
        _turn("write_article", "Write a news article that fits this summary: {target}\nArticle:", " {document}"),
        _turn("expand", "Expand this one-line summary into an article.\n{target}\n", " {document}"),
        _turn("story_for", "Summary: {target}\nWrite the story behind it.\n", " {document}"),
    )


def _with(extra: Callable[[Record], dict[str, Any]]) -> Callable[[Task], Callable[[dict], Record]]:
    """Wrap a registered task's preprocessing with the extra fields the FLAN templates read."""

    def wrap(task: Task) -> Callable[[dict], Record]:
        base = task.preprocess

        def pre(example: dict) -> Record:
            record = base(example)
            record.update(extra(record))
            return record

        return pre

    return wrap


def _entailed(entail_label: int) -> Callable[[Record], dict[str, Any]]:
    return lambda r: {"follow_word": "follows" if r["label"] == entail_label else "does not follow"}


# dataset -> (FLAN cluster, templates, FLAN answer strings in label order, extra fields)
FLAN_DATASETS: dict[str, tuple[str, Callable[[], tuple[Template, ...]], tuple[str, ...] | None,
                               Callable[[Record], dict[str, Any]] | None]] = {
    # RTE/QNLI: label 0 = entailment; WNLI: 1 = entailment (GLUE's label orders)
    "rte": ("nli", _nli_templates, ("yes", "no"), _entailed(0)),
    "wnli": ("nli", _nli_templates, ("no", "yes"), _entailed(1)),
    "qnli": ("nli", _qnli_templates, ("yes", "no"),
             lambda r: {"answers_word": "does" if r["label"] == 0 else "does not"}),
    "sst2": ("sentiment", _sst2_templates, ("negative", "positive"),
             lambda r: {"label_word": ("negative", "positive")[r["label"]]}),
    "mrpc": ("paraphrase", _mrpc_templates, ("no", "yes"),
             lambda r: {"same_word": "does" if r["label"] == 1 else "does not"}),
    # FLAN's "misc" cluster holds CoLA
    "cola": ("misc", _cola_templates, ("no", "yes"),
             lambda r: {"grammatical_word": "grammatical" if r["label"] == 1 else "ungrammatical"}),
    "multi30k_en_de": ("translation", _translation_templates, None, None),
    "xsum": ("summarization", _summary_templates, None, None),
}
FLAN_CLUSTERS = {name: spec[0] for name, spec in FLAN_DATASETS.items()}
DATASET_TITLES = {"rte": "RTE", "wnli": "WNLI", "qnli": "QNLI", "sst2": "SST-2", "mrpc": "MRPC", "cola": "CoLA",
                  "multi30k_en_de": "Multi30k en-de", "xsum": "XSum"}


def _flan_task(name: str) -> Task:
    cluster, templates, answers, extra = FLAN_DATASETS[name]
    base = get_task(name)
    tpls = templates()
    if answers is not None:  # every scored template ranks FLAN's answer strings, in label order
        tpls = tuple(dataclasses.replace(t, choices=answers) if t.target is None else t for t in tpls)
    changes: dict[str, Any] = {"name": f"flan/{name}", "templates": tpls, "cluster": cluster,
                               "description": f"{base.name} with FLAN-style templates (10, 3 turned around)"}
    if extra is not None:
        changes["preprocess"] = _with(extra)(base)
    return dataclasses.replace(base, **changes)


def scored_templates(task: str | Task) -> list[str]:
    """The templates a FLAN evaluation averages over (those that do not turn the task around)."""
    return [t.name for t in get_task(task).templates if t.target is None]


def turned_templates(task: str | Task) -> list[str]:
    return [t.name for t in get_task(task).templates if t.target is not None]


def options_in(prompt: str) -> list[str]:
    """The answer strings an ``OPTIONS:`` suffix lists (its "- x" lines)."""
    _, _, tail = prompt.rpartition("OPTIONS:\n")
    out = []
    for line in tail.split("\n"):
        if not line.startswith("- "):
            break
        out.append(line[2:])
    return out


# ============================================================================================
# reasoning-gym families as registry tasks

# family -> cluster: reasoning-gym's own grouping (the package module the family lives in;
# tests check it against the installed package). Families with short questions and answers.
RG_CLUSTERS: dict[str, str] = {
    "basic_arithmetic": "arithmetic", "chain_sum": "arithmetic", "gcd": "arithmetic", "lcm": "arithmetic",
    "count_bits": "arithmetic", "products": "arithmetic",
    "spell_backward": "algorithmic", "letter_counting": "algorithmic", "count_primes": "algorithmic",
    "base_conversion": "algorithmic", "sentence_reordering": "algorithmic", "caesar_cipher": "algorithmic",
    "syllogism": "logic", "aiw": "logic", "knights_knaves": "logic",
    "simple_equations": "algebra", "complex_arithmetic": "algebra",
    "family_relationships": "graphs",
}


@lru_cache(maxsize=None)
def rg_dataset(family: str, split: str):
    """The family's procedural dataset for a split (seeded, so the same items on every machine)."""
    import reasoning_gym

    seed = {"train": RG_TRAIN_SEED, "test": RG_TEST_SEED}[split]
    return reasoning_gym.create_dataset(family, seed=seed, size=RG_SIZES[split])


@lru_cache(maxsize=None)
def _rg_entries(family: str, split: str) -> tuple[dict, ...]:
    data = rg_dataset(family, split)
    return tuple(data[i] for i in range(len(data)))


def rg_score(family: str, answer: str, entry: Mapping[str, Any]) -> float:
    """reasoning-gym's scorer for one answer (1.0 = correct)."""
    return float(rg_dataset(family, "train").score_answer(answer=answer, entry=dict(entry)))


def _rg_rows(family: str) -> Callable[[str], list[dict[str, Any]]]:
    def load(split: str) -> list[dict[str, Any]]:
        entries = _rg_entries(family, split)
        # distractors are drawn from the other items' answers *with their frequencies*, so wrong
        # options follow the same distribution as gold ones (a model that only knows which answers
        # are common, e.g. GCD = 1, gains nothing)
        answers = [str(e["answer"]) for e in entries]
        rows = []
        for i, entry in enumerate(entries):
            gold = str(entry["answer"])
            rng = random.Random(f"rg|{family}|{split}|{i}")
            order = list(range(len(answers)))
            rng.shuffle(order)
            wrong: list[str] = []
            for j in order:  # only answers the family's scorer rejects are distractors
                cand = answers[j]
                if len(wrong) == RG_OPTIONS - 1:
                    break
                if cand != gold and cand not in wrong and rg_score(family, cand, entry) < 1.0:
                    wrong.append(cand)
            choices = wrong + [gold]
            rng.shuffle(choices)
            rows.append({"question": entry["question"], "answer": gold, "choices": choices,
                         "label": choices.index(gold), "entry": entry, "index": i})
        return rows

    return load


def _rg_record(example: Mapping[str, Any]) -> Record:
    return {"question": example["question"], "input": example["question"], "choices": list(example["choices"]),
            "label": int(example["label"]), "target": example["answer"], "references": [example["answer"]],
            "entry": example["entry"]}


def _rg_templates() -> tuple[Template, ...]:
    return (
        _T("question", "{question}"),
        _T("solve", "Solve the following problem.\n{question}", "Solution:"),
        _T("qa", "Q: {question}", "A:"),
        _T("pick", "{question}\n\nPick the correct answer from the list below.", "Answer:"),
        _T("puzzle", "Here is a puzzle for you. {question}", "The answer is"),
        _T("exercise", "Exercise:\n{question}\nWhich option is right?", "Right option:"),
        _T("think", "Think carefully and answer.\n{question}", "Final answer:"),
        _turn("ask_for_answer", "Write a problem whose answer is {target}.\nProblem:", " {question}"),
        _turn("answer_then_question", "Answer: {target}\nWhat could the question have been?", " {question}"),
        _turn("pose", "Pose an exercise of this kind with the solution {target}.", " {question}"),
    )


def _rg_task(family: str) -> Task:
    return Task(
        f"rg/{family}", f"reasoning_gym/{family}", "multiple_choice", _rg_record, _rg_templates(), ("acc",),
        cluster=RG_CLUSTERS[family], eval_split="test", exemplar_split="train", loader=_rg_rows(family),
        drop_eval_matching_exemplars=True, is_correct=lambda pred, rec, f=family: rg_score(f, pred, rec["entry"]) >= 1,
        max_gen_toks=24, perturb_fields=("question",),
        description=f"reasoning-gym {RG_VERSION} `{family}`: train seed {RG_TRAIN_SEED} ({RG_SIZES['train']}), "
                    f"test seed {RG_TEST_SEED} ({RG_SIZES['test']}); options = gold + answers the scorer rejects",
    )


# ============================================================================================
# P3 (T0's training mixture sample), one task per (dataset, prompt) file

# T0's task types (Sanh et al. 2022, Fig. 2) of the datasets in the sample; the held-out types
# (NLI, coreference, sentence completion, word sense) are absent from T0's training mixture.
P3_TASK_TYPE: dict[str, str] = {
    "adversarial_qa_dbert": "extractive_qa", "adversarial_qa_dbidaf": "extractive_qa",
    "adversarial_qa_droberta": "extractive_qa", "duorc_ParaphraseRC": "extractive_qa",
    "duorc_SelfRC": "extractive_qa", "quoref": "extractive_qa", "ropes": "extractive_qa",
    "ag_news": "topic_classification", "dbpedia_14": "topic_classification", "trec": "topic_classification",
    "amazon_polarity": "sentiment", "app_reviews": "sentiment", "imdb": "sentiment",
    "rotten_tomatoes": "sentiment", "yelp_review_full": "sentiment",
    "cnn_dailymail_3_0_0": "summarization", "gigaword": "summarization", "multi_news": "summarization",
    "samsum": "summarization", "xsum": "summarization",
    "common_gen": "structure_to_text", "wiki_bio": "structure_to_text",
    "commonsense_qa": "multiple_choice_qa", "cosmos_qa": "multiple_choice_qa", "dream": "multiple_choice_qa",
    "qasc": "multiple_choice_qa", "quarel": "multiple_choice_qa", "quartz": "multiple_choice_qa",
    "sciq": "multiple_choice_qa", "social_i_qa": "multiple_choice_qa", "wiki_hop_original": "multiple_choice_qa",
    "wiqa": "multiple_choice_qa",
    "kilt_tasks_hotpotqa": "closed_book_qa", "wiki_qa": "closed_book_qa",
    "glue_mrpc": "paraphrase", "glue_qqp": "paraphrase", "paws_labeled_final": "paraphrase",
}
P3_DIR = "t0_p3_50k"
P3_HELDOUT = 20  # the first rows of each file are its held-out slice (never trained on)
P3_MIN_BYTES = 2000


def _p3_root() -> Path:
    from repro.data import resolver

    root = resolver.data_root()
    if root is None or not (Path(root) / P3_DIR).is_dir():
        raise FileNotFoundError(f"P3 sample not found: expected $REPRO_DATA/{P3_DIR}/ (REPRO_DATA={root})")
    return Path(root) / P3_DIR


def p3_split(stem: str) -> tuple[str, str]:
    """(dataset, prompt) of a file stem, by the longest known dataset prefix."""
    for ds in sorted(P3_TASK_TYPE, key=len, reverse=True):
        if stem.startswith(ds + "_"):
            return ds, stem[len(ds) + 1:]
    raise KeyError(f"P3 file {stem!r} matches no known dataset")


def _p3_loader(stem: str) -> Callable[[str], list[dict[str, Any]]]:
    def load(split: str) -> list[dict[str, Any]]:
        with gzip.open(_p3_root() / f"{stem}.jsonl.gz", "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    return load


def _p3_record(example: Mapping[str, Any]) -> Record:
    target = example["completion"].removesuffix("<|endoftext|>").strip()
    return {"input": example["prompt"].rstrip(), "target": target, "references": [target]}


def _p3_task(stem: str) -> Task:
    ds, prompt = p3_split(stem)
    return Task(f"p3/{stem}", f"{P3_DIR}/{stem}", "generation", _p3_record,
                (Template(prompt, "{input}\n"),), ("em",), cluster=P3_TASK_TYPE[ds],
                eval_split=f"train[:{P3_HELDOUT}]", exemplar_split=f"train[{P3_HELDOUT}:]", loader=_p3_loader(stem),
                max_gen_toks=48, description=f"P3 {ds} with its PromptSource prompt {prompt!r} (T0 training mixture)")


def p3_stems() -> list[str]:
    """The P3 files of the mirror (empty when it is not there)."""
    try:
        root = _p3_root()
    except FileNotFoundError:
        return []
    # files too small to split: the sample's 11 TREC fine-grained files are empty and 6 wiki_qa files
    # hold 8 rows; every other file has >= 91 rows. Compressed size tells them apart without reading
    # 16 MB at import (< 40 rows: <= 757 bytes; >= 40 rows: >= 2,915 bytes in this mirror)
    return sorted(p.name.removesuffix(".jsonl.gz") for p in root.glob("*.jsonl.gz") if p.stat().st_size >= P3_MIN_BYTES)


# ============================================================================================
# Mixtures and training text


def flan_tasks(cluster: str) -> list[str]:
    """The registered FLAN tasks (mirror datasets and reasoning-gym families) of a cluster."""
    return [n for n in list_tasks(cluster) if n.startswith(("flan/", "rg/"))]


def flan_clusters() -> list[str]:
    return sorted({get_task(n).cluster for n in list_tasks() if n.startswith(("flan/", "rg/"))})


def flan_mixture(train_clusters: Sequence[str], held_out: Sequence[str] = (), cap: int | None = 3000,
                 name: str | None = None) -> Mixture:
    """FLAN's tuning mixture: every task of `train_clusters`, examples-proportional with a cap;
    a held-out cluster is refused, so it can never leak into tuning."""
    leaked = set(train_clusters) & set(held_out)
    if leaked:
        raise ValueError(f"held-out clusters {sorted(leaked)} are in the tuning clusters")
    tasks = [t for c in train_clusters for t in flan_tasks(c)]
    if not tasks:
        raise ValueError(f"no FLAN tasks in clusters {list(train_clusters)}")
    return Mixture(name or "flan_" + "+".join(train_clusters), tasks, cap=cap)


FORMATS = ("instructions", "no_template", "dataset_name")


def flan_pair(task: Task, record: Record, rng: random.Random, fmt: str = "instructions") -> tuple[str, str]:
    """One tuning example as (prompt, answer): FLAN draws a template per example (turned-around
    ones included); the ablations of Fig. 8 keep the inputs and the OPTIONS list but drop the
    instruction ("no_template") or replace it by the dataset's name ("dataset_name")."""
    if fmt == "instructions":
        template = task.templates[rng.randrange(len(task.templates))]
        return task.template(template.name).render(record), template.answer(record)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    scored = task.template(scored_templates(task)[0])
    fields = record["question"] if "question" in record else record["input"]
    body = fields
    if task.kind == "multiple_choice":
        body += "\nOPTIONS:\n" + scored.fields(record)["options_block"]
    if fmt == "dataset_name":
        title = DATASET_TITLES.get(task.name.split("/", 1)[1], task.name.split("/", 1)[1])
        body = f"[{title}]\n{body}"
    return body + "\n", scored.answer(record)


# ============================================================================================
# Declarations


def _declare() -> list[Task]:
    tasks = [_flan_task(name) for name in FLAN_DATASETS]
    tasks += [_rg_task(family) for family in RG_CLUSTERS]
    tasks += [_p3_task(stem) for stem in p3_stems()]
    return tasks


for _task in _declare():
    register(_task, replace=True)
