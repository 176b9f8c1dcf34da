"""The demo task: deterministic problems, splits that never share arithmetic, teacher traces that are right."""

from bai_core.demo.arithmetic import SPLITS, extract_answer, problems, split_of, trace


def test_splits_are_disjoint_and_deterministic():
    arithmetic = {}
    for split in SPLITS:
        items = problems(split, seed=3, a_range=(10, 99), b_range=(1, 9), count=500)
        assert items == problems(split, seed=3, a_range=(10, 99), b_range=(1, 9), count=500)
        arithmetic[split] = {(p.op, p.a, p.b) for p in items}
    assert not arithmetic["train"] & arithmetic["eval"]
    assert not arithmetic["train"] & arithmetic["rl"]
    assert not arithmetic["rl"] & arithmetic["eval"]
    assert problems("eval", 4, (10, 99), (1, 9), 50) != problems("eval", 3, (10, 99), (1, 9), 50)


def test_every_teacher_trace_ends_in_the_right_result():
    for op in "+-":
        for a in range(0, 120):
            for b in range(0, 120):
                if op == "-" and b > a:
                    continue
                expected = a + b if op == "+" else a - b
                assert trace(op, a, b).endswith(f"{a}{op}{b}={expected}."), (op, a, b)
    assert split_of("+", 12, 3, 0) in SPLITS


def test_answers_are_read_from_the_right_place():
    assert extract_answer("37+5=42", "instruct") == 42
    assert extract_answer("<think>7+5=12, 3+0+1=4. 37+5=42.</think>42", "reasoning") == 42
    assert extract_answer("<think>7+5=12 and then nothing", "reasoning") is None
    assert extract_answer("no number", "instruct") is None


def test_the_pretraining_corpus_holds_every_kind_and_no_held_out_problem():
    from bai_core.demo.corpus import CORPUS_KINDS, pretraining_corpus

    train = problems("train", 0, (10, 99), (1, 9), 400)
    corpus = pretraining_corpus(train, 0, tuple(CORPUS_KINDS))
    assert len(corpus) == sum(round(share * len(train)) for share in CORPUS_KINDS.values())
    assert any("digit by digit" in text for text in corpus)  # worked column arithmetic
    assert any(text.startswith("user: ") and "assistant: " in text for text in corpus)  # dialogues
    assert pretraining_corpus(train, 0, ("stories",)) == [p.plain() for p in train]
    # Held-out arithmetic never reaches the base, in any of the corpus's wordings.
    text = "\n".join(corpus)
    for split in ("eval", "rl"):
        for p in problems(split, 0, (10, 99), (1, 9), 200):
            assert f"{p.a} {p.op} {p.b} =" not in text and f"{p.a}{p.op}{p.b}=" not in text, p
    try:
        pretraining_corpus(train, 0, ("stories", "novels"))
    except ValueError as e:
        assert "novels" in str(e)
    else:
        raise AssertionError("an unknown corpus kind was accepted")
