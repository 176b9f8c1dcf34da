"""The demo families: what the shipped ones do (the demo family's members answer well and a merge of it still
generates; the test family's members keep their styles), and what holds for every build on any machine: a build is
bit for bit the same twice, a folder holding one is reused, and the family's lock makes a second build wait.

Tests that say how well a model answers read shipped, fixed weights: a family trained here would be this processor's
(the builds pin their kernels, research/cpu-portability/README.md, but a test must not bet its verdict on that)."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bai.cli import main
from bai_core.demo.arithmetic import extract_answer, problems
from bai_core.demo.family import LANGUAGE_MODELS, MANIFEST, MEMBERS, SIZES


def generate(folder, questions: list[str], max_new_tokens: int = 48) -> list[tuple[str, bool]]:
    """Greedy answers from a checkpoint loaded the way any user loads it; (text, stopped by end-of-sequence)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                             tokenize=False) for q in questions]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [(tokenizer.decode(row, skip_special_tokens=True), tokenizer.eos_token_id in row.tolist()) for row in new]


def eval_questions(n: int = 32, size: str = "test"):
    from bai_core.demo.sizes import SHIPPED_SEEDS

    spec = SIZES[size]
    return problems("eval", SHIPPED_SEEDS[size], spec.a_range, spec.b_range, n)


@pytest.fixture(scope="module")
def shipped_demo_family():
    """The demo-size family shipped with bai (verified file by file), the one `make demo` uses."""
    from bai_core.demo.publish import ensure_demo_family
    from bai_core.demo.sizes import SHIPPED_SEEDS

    family = ensure_demo_family("demo", SHIPPED_SEEDS["demo"])
    assert family.origin == "shipped"
    return family


def beats_guessing(n: int, answers: int = 108, odds: float = 0.01) -> int:
    """The fewest right answers out of n that a uniform guesser among `answers` values reaches with probability
    below `odds` (exact binomial tail)."""
    p = 1 / answers
    tail = 1.0
    for k in range(n + 1):
        if tail < odds:
            return k
        tail -= math.comb(n, k) * p**k * (1 - p) ** (n - k)
    return n + 1


def test_the_chance_threshold_is_the_binomial_tail():
    assert [beats_guessing(n) for n in (32, 64, 200)] == [3, 4, 7]
    # A guesser's pass rate at that threshold, counted over simulated guessers: about the 1% it claims, not more.
    rng = random.Random(0)
    passed = sum(sum(rng.randrange(108) == 0 for _ in range(200)) >= 7 for _ in range(4000))
    assert passed / 4000 < 0.01


def test_the_shipped_members_behave_as_intended(shipped_demo_family):
    family = shipped_demo_family
    report = family.report.models
    items = eval_questions(size="demo")
    instruct = generate(family.root / "instruct", [p.question for p in items])
    reasoning = generate(family.root / "reasoning", [p.question for p in items])
    # instruct answers briefly, with no working; reasoning thinks first, in a <think> block, then answers.
    assert all("<think>" not in text and len(text) <= 12 for text, _ in instruct)
    assert sum(text.startswith("<think>") and "</think>" in text for text, _ in reasoning) >= 0.9 * len(items)
    assert report["reasoning"]["mean_answer_tokens"] > 3 * report["instruct"]["mean_answer_tokens"]
    # Better than chance: more right answers than a uniform guess among the task's 108 possible answers (1..108)
    # reaches with probability 1%. Brief answers are cheap, so instruct is asked 200 problems (a guesser needs 7 to
    # pass); reasoning, 32 (a guesser needs 3). The family's report says how far above chance they are.
    many = eval_questions(200, size="demo")
    brief = generate(family.root / "instruct", [p.question for p in many], max_new_tokens=12)
    for style, texts, asked in [("instruct", brief, many), ("reasoning", reasoning, items)]:
        correct = sum(extract_answer(text, style) == p.answer for (text, _), p in zip(texts, asked))
        assert correct >= beats_guessing(len(asked)), (style, correct, len(asked))
    assert report["reasoning"]["accuracy"] > report["pretrained"]["accuracy"]
    assert report["reward"]["pairwise_accuracy"] > 0.5
    # Per answer style too; the overall figure is their weighted mean, so it lies between them.
    for style in ("brief", "reasoning"):
        assert 0 <= report["reward"][f"{style}_pairs_accuracy"] <= 1
    assert min(report["reward"]["brief_pairs_accuracy"], report["reward"]["reasoning_pairs_accuracy"]) <= \
        report["reward"]["pairwise_accuracy"] <= \
        max(report["reward"]["brief_pairs_accuracy"], report["reward"]["reasoning_pairs_accuracy"])


def test_the_test_familys_members_keep_their_styles(demo_family):
    """The test family, which most of the suite trains and scores with, is small and weak, but its members answer
    in their own styles: instruct briefly and without working, reasoning in a think block; and reasoning beats
    chance."""
    report = demo_family.report.models
    items = eval_questions(32)
    instruct = generate(demo_family.root / "instruct", [p.question for p in items], max_new_tokens=12)
    reasoning = generate(demo_family.root / "reasoning", [p.question for p in items])
    assert all("<think>" not in text and len(text) <= 12 for text, _ in instruct)
    assert sum(text.startswith("<think>") for text, _ in reasoning) >= 0.9 * len(items)
    assert report["reasoning"]["mean_answer_tokens"] > 3 * report["instruct"]["mean_answer_tokens"]
    correct = sum(extract_answer(text, "reasoning") == p.answer for (text, _), p in zip(reasoning, items))
    assert correct >= beats_guessing(len(items)), correct


def test_the_report_scores_the_merges_over_the_papers_grid(demo_family, tmp_path):
    from bai_core.demo.evaluation import MERGE_ALPHAS, evaluate_lm, evaluate_merges

    rows = demo_family.report.merges
    assert [(r["model"], r["alpha"]) for r in rows] == [("M_sft", None)] + [("M_bai", a) for a in MERGE_ALPHAS]
    for row in rows:
        assert row["instruct_weight"] == 0.5
        assert all(0 <= row[k] <= 1 for k in ("accuracy", "think_rate", "finished_rate"))
        assert 0 < row["mean_answer_tokens"] <= 64
    # The row is what a user gets from `bai merge` with the same weights, scored the same way: the report's own code
    # and `bai merge`, both scored here (the report's figures are the build's processor's; a near tie between two
    # tokens may fall the other way on another one).
    out = tmp_path / "bai"
    code = main(["merge", *(f"--{m}={demo_family.root / m}" for m in LANGUAGE_MODELS), "--output", str(out),
                 "--alpha", "0.5", "--instruct-weight", "0.5"])
    assert code == 0
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = SIZES["test"]
    held_out = problems("eval", 0, spec.a_range, spec.b_range, spec.eval_problems)
    mine = evaluate_lm(AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out), held_out,
                       plain_text=False)
    here = evaluate_merges(demo_family.root, AutoTokenizer.from_pretrained(demo_family.root / "reasoning"), held_out)
    assert [(r["model"], r["alpha"]) for r in here] == [(r["model"], r["alpha"]) for r in rows]
    assert {**mine, "model": "M_bai", "alpha": 0.5, "instruct_weight": 0.5} == here[MERGE_ALPHAS.index(0.5) + 1]


def test_reward_model_loads_as_a_sequence_classifier(demo_family):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(demo_family.root / "reward")
    tokenizer = AutoTokenizer.from_pretrained(demo_family.root / "reward")
    assert model.config.num_labels == 1
    ids = tokenizer("<s>user: 1+1</s><s>assistant: 1+1=2</s>", return_tensors="pt", add_special_tokens=False)
    assert model(**ids).logits.shape == (1, 1)


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    """The tiny family built twice on this machine, at the same time: by `bai demo build` in another process and
    another environment (the hub not switched off: everything here is local anyway), and by tests/retrain_members.py,
    which trains the members one `train_members` call at a time from a base saved and loaded back, as the recipe
    sweep does, in a process started on the builds' kernels. -> (the build's folder, its report, the retrain's
    folder, the build's command)."""
    from bai_core.demo.builder import pinned_environment

    root = tmp_path_factory.mktemp("two-builds")
    command = [sys.executable, "-m", "bai.cli", "demo", "build", "--size", "tiny", "--seed", "0",
               "--output", str(root / "family"), "--json"]
    build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"})
    retrain = subprocess.Popen([sys.executable, str(Path(__file__).with_name("retrain_members.py")), "tiny",
                                str(root / "retrained")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=pinned_environment())
    out, err = build.communicate(timeout=300)
    log, _ = retrain.communicate(timeout=300)
    assert build.returncode == 0, err[-3000:]
    assert retrain.returncode == 0, log[-3000:]
    return root / "family", json.loads(out), root / "retrained", command


@pytest.mark.slow
def test_a_build_is_deterministic_pinned_to_its_kernels_and_never_trains_twice(two_builds):
    from bai_core.demo.family import recipe_id
    from bai_core.demo.training import TRAINING_KERNELS

    folder, report, _, command = two_builds
    assert (report["size"], report["seed"], report["recipe"]) == ("tiny", 0, recipe_id("tiny"))
    # trained in a process started on the pinned kernels, whatever this one runs on
    assert report["built_on"]["kernels"] == {"aten": "DEFAULT", **TRAINING_KERNELS}
    assert report["built_on"]["torch_threads"] == 1
    for member in MEMBERS:
        assert report["models"][member]["fingerprint"].startswith("sha256:")
    # The same folder again: the report of what is there, nothing retrained.
    manifest_mtime = (folder / MANIFEST).stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and json.loads(again.stdout) == report
    assert (folder / MANIFEST).stat().st_mtime_ns == manifest_mtime


@pytest.mark.slow
def test_members_trained_one_call_at_a_time_from_a_given_base_are_the_builds_own(two_builds):
    """The second build, made of train_members calls (the recipe sweep's one base, many fine-tunes), gives the
    first one's weights to the bit, member by member."""
    from safetensors.torch import load_file

    folder, _, retrained, _ = two_builds
    for member in MEMBERS:
        mine = load_file(retrained / member / "model.safetensors")
        built = load_file(folder / member / "model.safetensors")
        assert mine.keys() == built.keys(), member
        assert all(torch.equal(mine[name], tensor) for name, tensor in built.items()), member


@pytest.mark.parametrize("args,message", [
    (["--size", "huge"], "unknown demo size 'huge'"),
    (["--seed", "-1"], "seed must be >= 0"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    code = main(["demo", "build", "--output", str(tmp_path / "f"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "f").exists()


def test_an_output_that_holds_something_else_is_refused(tmp_path, capsys):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "notes.txt").write_text("mine")
    code = main(["demo", "build", "--size", "test", "--output", str(tmp_path / "f")])
    assert code == 1 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "f" / "notes.txt").read_text() == "mine"


def test_the_merged_family_still_generates_well_formed_text(shipped_demo_family, tmp_path):
    from bai_core.merge import merge_two_stages
    from bai_core.merge.config import MergeJob

    members = {m: shipped_demo_family.root / m for m in LANGUAGE_MODELS}
    merge_two_stages(MergeJob(**members, output=tmp_path / "bai", alpha=0.5, instruct_weight=0.5))
    outputs = generate(tmp_path / "bai", [p.question for p in eval_questions(16, size="demo")], max_new_tokens=64)
    printable = set(map(chr, range(32, 127))) | {"\n"}
    for text, _ in outputs:
        assert set(text.replace("<think>", "").replace("</think>", "")) <= printable
    # Most answers finish: they stop before the limit, and end in a number.
    finished = [stopped and text.rstrip()[-1:].isdigit() and
                extract_answer(text, "reasoning" if "<think>" in text else "instruct") is not None
                for text, stopped in outputs]
    assert sum(finished) >= len(outputs) // 2, outputs


def test_fine_tunes_can_be_held_near_their_start_and_rehearse_the_base(demo_family):
    """`anchor` pulls the weights toward where the run started; `replay` puts pretraining text in every batch."""
    from dataclasses import replace

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bai_core.demo.recipe import Schedule
    from bai_core.demo.training import encode_chats, encode_texts, train_causal_lm

    tokenizer = AutoTokenizer.from_pretrained(demo_family.root / "instruct")
    items = eval_questions(16)
    chats = encode_chats(tokenizer, [(p.question, p.instruct_answer()) for p in items])
    # Batched encoding is the chat template rendered per example, token for token.
    prefix = tokenizer.apply_chat_template([{"role": "user", "content": items[3].question}],
                                           add_generation_prompt=True, tokenize=False)
    assert chats[3][0] == tokenizer(prefix + items[3].instruct_answer() + tokenizer.eos_token,
                                    add_special_tokens=False)["input_ids"]
    texts = encode_texts(tokenizer, [p.plain() for p in items])

    def distance(schedule: Schedule, replay=None) -> tuple[float, list[float]]:
        model = AutoModelForCausalLM.from_pretrained(demo_family.root / "pretrained")
        start = [p.detach().clone() for p in model.parameters()]
        losses = train_causal_lm(model, chats, schedule, 0, tokenizer.pad_token_id, replay=replay)
        return sum(((p.detach() - s) ** 2).sum().item() for p, s in zip(model.parameters(), start)), losses

    plain = Schedule(8, batch_size=4, learning_rate=1e-2, warmup=1, weight_decay=0.0)
    free, _ = distance(plain)
    held, _ = distance(replace(plain, anchor=10.0))
    assert held < 0.5 * free
    # Replay changes what is learned from (the chat examples alone give other losses) ...
    _, chat_only = distance(plain)
    _, rehearsed = distance(replace(plain, replay=0.5), replay=texts)
    assert chat_only != rehearsed
    # ... and is off without pretraining text to draw from.
    _, no_text = distance(replace(plain, replay=0.5))
    assert no_text == chat_only


def test_a_build_that_finds_the_family_lock_held_waits_and_uses_what_the_holder_built(demo_family, tmp_path,
                                                                                      monkeypatch):
    """The family-build lock, forced: a machine that never built the family, a "run" holding its lock (this test),
    and a second run that must wait, then take the family the first one left in the cache instead of training."""
    import threading

    from bai_core.demo import shipped
    from bai_core.demo.publish import _lock_name, ensure_demo_family, family_key
    from bai_core.locks import exclusive

    monkeypatch.setenv("BAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "ships-nothing")
    result = {}
    waiter = threading.Thread(target=lambda: result.update(family=ensure_demo_family("test", 0)), daemon=True)
    with exclusive(_lock_name("test", 0)):
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive() and not result  # blocked on the lock, not training beside the holder
        built = tmp_path / "cache" / family_key("test", 0)  # what the holder's build leaves in the cache
        for member in ("pretrained", "instruct", "reasoning", "reward"):
            shutil.copytree(demo_family.root / member, built / member)
        shutil.copy(demo_family.root / MANIFEST, built / MANIFEST)
    waiter.join(timeout=60)
    family = result["family"]
    assert family.origin == "machine" and family.root == built  # found, not trained
    assert family.report.models == demo_family.report.models


@pytest.mark.slow
def test_ctrl_c_stops_a_build_and_its_process_and_leaves_nothing(tmp_path):
    """The build trains in a child process (on the pinned kernels); Ctrl-C to `bai demo build` stops both within
    seconds, with the stop's exit code, and leaves neither the family nor its temporary folder."""
    import signal
    import time

    import psutil

    output = tmp_path / "family"
    proc = subprocess.Popen([sys.executable, "-m", "bai.cli", "demo", "build", "--size", "test", "--seed", "1",
                             "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        builders = []
        while not builders and time.monotonic() < deadline:
            time.sleep(0.5)
            builders = [p for p in psutil.Process(proc.pid).children(recursive=True)
                        if "bai_core.demo.pinned_build" in " ".join(p.cmdline())]
        assert builders, "no build process started"
        time.sleep(8)  # into its training
        assert list(tmp_path.glob(".family.bai-tmp-*")), "the build writes into a temporary folder"
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1].strip().splitlines()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 130, err[-5:]
    assert err[-1].startswith("bai: stopped by SIGINT") and "Traceback" not in "\n".join(err), err[-5:]
    psutil.wait_procs(builders, timeout=10)
    assert not any(p.is_running() for p in builders)
    assert not output.exists() and list(tmp_path.iterdir()) == []
