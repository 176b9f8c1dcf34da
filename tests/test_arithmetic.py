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
