"""The verifiable rewards on hand-written completions: math-verify for GSM8K- and MATH-style answers (\\boxed{},
fractions, LaTeX, think blocks), the demo task's arithmetic, and the answers prepare-train refuses."""

from __future__ import annotations

import pytest

from bai_core.errors import BaiError
from bai_core.rl.rewards import RewardRecorder, VerifiableReward, check_answers, math_correct

GSM8K = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
MATH = r"The area is $\frac{1}{2} \cdot 3 \cdot 4 = 6$, so the answer is $\boxed{6}$."


@pytest.mark.parametrize("completion,answer,right", [
    # GSM8K: the reference is what follows ####
    (r"She sold 72 clips in all. The answer is \boxed{72}.", GSM8K, True),
    ("48 + 24 = 72, so she sold 72 clips.", GSM8K, True),  # no \boxed{}: the last expression
    (r"\boxed{71}", GSM8K, False),
    (r"\boxed{1234}", "#### 1,234", True),  # GSM8K's thousands separator
    # MATH: the reference solution's \boxed{}
    (r"$3 \times 4 / 2 = \boxed{6}$", MATH, True),
    (r"\boxed{7}", MATH, False),
    # fractions and LaTeX, equal as numbers or expressions
    (r"\boxed{0.5}", r"\frac{1}{2}", True),
    (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{\sqrt2}{2}", True),
    (r"\boxed{\frac{2}{4}}", "1/2", True),
    (r"\boxed{\frac{1}{3}}", r"\frac{1}{2}", False),
    # think blocks: only what follows </think> is the answer; one that never closed has none
    (r"<think>48+24=71, no: 72</think> \boxed{72}", "72", True),
    (r"<think>the answer is \boxed{72}</think> so \boxed{70}", "72", False),
    (r"72</think>\boxed{72}", "72", True),  # the chat template opened the think block
    (r"<think>48+24=72, and then", "72", False),
    # unparsable or empty answers score 0, never raise
    ("I don't know.", "72", False),
    ("", "72", False),
    (r"\boxed{", "72", False),
])
def test_math_verify_on_hand_written_completions(completion, answer, right):
    assert math_correct(completion, answer) is right


def test_the_verifiable_rewards_score_a_batch_and_record_it():
    recorder = RewardRecorder()
    math = VerifiableReward("verifiable-math", "math", recorder)
    arithmetic = VerifiableReward("verifiable-arithmetic", "arithmetic", recorder)
    completions = [[{"role": "assistant", "content": r"\boxed{42}"}],
                   [{"role": "assistant", "content": "<think>7+5=12, 3+0+1=4. 37+5=42.</think>42"}],
                   [{"role": "assistant", "content": "<think>7+5=12, 3+0+1=4. 37+5=41.</think>41"}],
                   [{"role": "assistant", "content": "Ann has 42"}]]
    ids = [[1] * 5, [1] * 20, [1] * 20, [1] * 6]
    assert math(None, completions, ids, answer=[42, 42, 42, 42]) == [1.0, 1.0, 0.0, 1.0]
    assert arithmetic(None, completions, ids, answer=[42, 42, 42, 42]) == [1.0, 1.0, 0.0, 1.0]
    assert recorder.lengths == [5, 20, 20, 6]
    assert recorder.components == {"verifiable-math": [1.0, 1.0, 0.0, 1.0],
                                   "verifiable-arithmetic": [1.0, 1.0, 0.0, 1.0]}
    with pytest.raises(BaiError, match="needs an `answer` column"):
        math(None, completions, ids)


@pytest.mark.parametrize("kind,answer,error", [
    ("math", None, "row 2 has no answer (the math reward needs one per prompt)"),
    ("math", "  ", "row 2 has no answer"),
    ("math", "#### ", "row 2: math-verify cannot read the answer '#### '"),
    ("arithmetic", "forty-two", "row 2: answer 'forty-two' is not a whole number"),
])
def test_answers_a_verifier_cannot_read_are_refused_naming_the_row(kind, answer, error):
    rows = [{"prompt": "1+1?", "answer": "2"}, {"prompt": "2+2?", **({} if answer is None else {"answer": answer})}]
    with pytest.raises(BaiError) as refused:
        check_answers(kind, rows, "p.jsonl")
    assert str(refused.value).startswith("prompts p.jsonl: ") and error in str(refused.value)
    check_answers(kind, rows[:1], "p.jsonl")  # the readable row alone passes


def test_prompt_columns_are_mapped_to_trl_and_text_becomes_chat_with_the_instruction(tmp_path):
    import json

    from bai_core.rl.config import PromptSettings
    from bai_core.rl.prompts import load_prompts

    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a, "id": i}) + "\n"
                            for i, (q, a) in enumerate([("Ann has 3 pens and buys 4. How many?", "#### 7"),
                                                        ("Bo has 9 cups and breaks 2. How many?", "#### 7")])))
    spec = PromptSettings(source=str(path), prompt_column="question", chat=True, instruction=r"Put it in \boxed{}.")
    prompts = load_prompts(spec)
    assert prompts.conversational and prompts.columns == ["answer", "id", "prompt"]
    assert prompts.rows[0]["prompt"] == [{"role": "user",
                                          "content": "Ann has 3 pens and buys 4. How many?\nPut it in \\boxed{}."}]
    renamed = load_prompts(PromptSettings(source=str(path), prompt_column="question", answer_column="id"))
    assert [row["answer"] for row in renamed.rows] == [0, 1] and renamed.rows[0]["prompt"].startswith("Ann")
    assert renamed.fingerprint != prompts.fingerprint  # what the reward sees is part of the fingerprint
    with pytest.raises(BaiError, match=r"gsm.jsonl: no `prompt` column \(columns: answer, id, question\)"):
        load_prompts(str(path))
