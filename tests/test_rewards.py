"""The verifiable rewards on hand-written completions: math-verify for GSM8K- and MATH-style answers (\\boxed{},
fractions, LaTeX, think blocks), the demo task's arithmetic, and the answers prepare-train refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bai_core.completion import CompletionReader
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


EOS = 0
PLAIN_CHAT = CompletionReader(template_opens_think=False, stop_ids=frozenset({EOS}))


def test_the_verifiable_rewards_score_a_batch_and_record_it():
    recorder = RewardRecorder()
    math = VerifiableReward("verifiable-math", "math", recorder, PLAIN_CHAT)
    arithmetic = VerifiableReward("verifiable-arithmetic", "arithmetic", recorder, PLAIN_CHAT)
    completions = [[{"role": "assistant", "content": r"\boxed{42}"}],
                   [{"role": "assistant", "content": "<think>7+5=12, 3+0+1=4. 37+5=42.</think>42"}],
                   [{"role": "assistant", "content": "<think>7+5=12, 3+0+1=4. 37+5=41.</think>41"}],
                   [{"role": "assistant", "content": "Ann has 42"}]]
    prompts = [[{"role": "user", "content": "37+5?"}]] * 4
    ids = [[1] * 4 + [EOS], [1] * 19 + [EOS], [1] * 19 + [EOS], [1] * 5 + [EOS]]
    assert math(prompts, completions, ids, answer=[42, 42, 42, 42]) == [1.0, 1.0, 0.0, 1.0]
    assert arithmetic(prompts, completions, ids, answer=[42, 42, 42, 42]) == [1.0, 1.0, 0.0, 1.0]
    assert recorder.lengths == [5, 20, 20, 6]
    assert recorder.statuses == ["finished"] * 4
    assert recorder.components == {"verifiable-math": [1.0, 1.0, 0.0, 1.0],
                                   "verifiable-arithmetic": [1.0, 1.0, 0.0, 1.0]}
    with pytest.raises(BaiError, match="needs an `answer` column"):
        math(prompts, completions, ids)


@pytest.fixture
def r1_checkpoint_files(tmp_path):
    """The real side files of DeepSeek-R1-Distill-Qwen (config of the 1.5B; tokenizer_config with its chat template
    and generation_config of the 32B, which shares the tokenizer): the folder a reward reads its reading from."""
    real = Path(__file__).parent / "data" / "real-families"
    shutil.copyfile(real / "deepseek-ai--DeepSeek-R1-Distill-Qwen-1.5B" / "config.json", tmp_path / "config.json")
    for name in ("tokenizer_config.json", "generation_config.json"):
        shutil.copyfile(real / "deepseek-ai--DeepSeek-R1-Distill-Qwen-32B" / name, tmp_path / name)
    return tmp_path


R1_EOS = 151643  # <｜end▁of▁sentence｜>, R1's generation_config.json eos_token_id


@pytest.mark.parametrize("completion,ends_with_eos,earns", [
    # R1's template opened the think block: a completion cut in mid-thought holds no answer, right number or not
    ("Natalia sold 24 in May, 48 + 24 = 72, so the answer is 72", False, 0.0),
    # ... nor one that stopped inside it
    ("Natalia sold 24 in May, 48 + 24 = 72, so the answer is 72", True, 0.0),
    # the same thinking, closed, then the answer: paid
    ("48 + 24 = 72.\n</think>\n\nShe sold \\boxed{72} clips.", True, 1.0),
    # closed and answered, but the token limit cut it before its stop token: 0 by default
    ("48 + 24 = 72.\n</think>\n\nShe sold \\boxed{72} clips, and", False, 0.0),
    # a wrong answer after the think block
    ("48 + 24 = 71.\n</think>\n\n\\boxed{71}", True, 0.0),
])
def test_a_completion_cut_inside_an_r1_think_block_earns_nothing(r1_checkpoint_files, completion, ends_with_eos,
                                                                   earns):
    reader = CompletionReader.of_checkpoint(r1_checkpoint_files)
    assert reader.template_opens_think and R1_EOS in reader.stop_ids
    reward = VerifiableReward("verifiable-math", "math", RewardRecorder(), reader)
    prompt = [{"role": "user", "content": "How many clips did Natalia sell?"}]
    ids = [7] * 30 + ([R1_EOS] if ends_with_eos else [])
    assert reward([prompt], [[{"role": "assistant", "content": completion}]], [ids], answer=[GSM8K]) == [earns]


def test_score_truncated_pays_a_cut_answer_but_never_an_unclosed_think_block(r1_checkpoint_files):
    reader = CompletionReader.of_checkpoint(r1_checkpoint_files)
    recorder = RewardRecorder()
    reward = VerifiableReward("verifiable-math", "math", recorder, reader, score_truncated=True)
    prompt = [{"role": "user", "content": "How many clips?"}]
    cut_answer = [{"role": "assistant", "content": "48 + 24 = 72.</think> She sold \\boxed{72} clips, and"}]
    cut_thought = [{"role": "assistant", "content": "48 + 24 = 72, so the answer is 72"}]
    assert reward([prompt] * 2, [cut_answer, cut_thought], [[7] * 40] * 2, answer=[GSM8K] * 2) == [1.0, 0.0]
    assert recorder.statuses == ["truncated", "truncated"]
    # a text prompt that itself ends inside <think> is read the same way, whatever the template
    text_reader = CompletionReader(template_opens_think=False, stop_ids=frozenset({EOS}))
    text_reward = VerifiableReward("verifiable-math", "math", RewardRecorder(), text_reader)
    assert text_reward(["Q: 48 + 24?\nA: <think>"], ["48 + 24 = 72"], [[1, EOS]], answer=["72"]) == [0.0]
    assert text_reward(["Q: 48 + 24?\nA: <think>"], ["48 + 24 = 72</think>72"], [[1, EOS]], answer=["72"]) == [1.0]


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
