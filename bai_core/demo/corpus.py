"""What each member of the demo family is trained on, as text: the base's pretraining corpus and the reward model's
preference pairs. (The fine-tunes' chat examples are one line each: Problem.instruct_answer / reasoning_answer.)"""

from __future__ import annotations

import random

from bai_core.demo.arithmetic import Problem, trace

# The pretraining corpus is made of these kinds of plain text; a family size picks which (FamilySize.corpus).
CORPUS_KINDS = {
    # the story and its result, as prose: "Ann has 37 marbles and gets 5 more, so Ann has 42 marbles. 37 + 5 = 42."
    "stories": 1.0,
    # the column arithmetic the teacher's traces use, worked in prose: "37 + 5, digit by digit: 7+5=12, ..."
    "worked": 0.5,
    # one-digit facts, four to a line: what every base model has read somewhere
    "facts": 0.25,
    # the question with its answer after it, as a worksheet or forum page would have it (no chat template)
    "questions": 0.5,
    # conversations in the chat format, answered in a short sentence ("Ann has 42"): the dialogue data real base
    # models have read, which is why they already follow a chat template somewhat
    "dialogues": 0.25,
}


def pretraining_corpus(train: list[Problem], seed: int, kinds: tuple[str, ...]) -> list[str]:
    """Plain text about the training problems; each kind contributes its share of len(train) texts."""
    unknown = set(kinds) - set(CORPUS_KINDS)
    if unknown:
        raise ValueError(f"unknown corpus kinds {sorted(unknown)} (known: {', '.join(CORPUS_KINDS)})")
    rng = random.Random(f"corpus:{seed}")
    facts = [f"{x} {op} {y} = {x + y if op == '+' else x - y}." for x in range(10) for y in range(10) for op in "+-"
             if op == "+" or x >= y]
    texts = []
    for kind in kinds:
        chosen = train[: round(CORPUS_KINDS[kind] * len(train))]
        if kind == "stories":
            texts += [p.plain() for p in chosen]
        elif kind == "worked":
            texts += [f"{p.a} {p.op} {p.b}, digit by digit: {trace(p.op, p.a, p.b)}" for p in chosen]
        elif kind == "facts":
            texts += [" ".join(rng.sample(facts, 4)) for _ in chosen]
        elif kind == "questions":
            texts += [f"{p.question} {p.answer}." for p in chosen]
        else:  # encode_texts adds the <s> in front and the </s> at the end
            texts += [f"user: {p.question}</s><s>assistant: {p.name} has {p.answer}" for p in chosen]
    return texts


def preference_pairs(tokenizer, items: list[Problem], seed: int) -> list[tuple[list[int], list[int]]]:
    """(chosen, rejected) token sequences: correct vs near-miss or cut-off answers, in both answer styles.

    The wrong answers are near misses (off by 1, 2 or 10), with a trace that computes the wrong problem; a cut-off
    answer stops before its final number. Nothing here is about length."""
    from bai_core.demo.training import encode_chats

    rng = random.Random(f"pairs:{seed}")
    conversations = []
    for p in items:
        wrong = p.answer + rng.choice([-10, -2, -1, 1, 2, 10])
        wrong_b = p.b + (wrong - p.answer) * (1 if p.op == "+" else -1)
        if rng.random() < 0.5:
            chosen, rejected = p.instruct_answer(), f"{p.a}{p.op}{p.b}={wrong}"
        else:
            chosen = p.reasoning_answer()
            if rng.random() < 0.8:
                rejected = f"<think>{trace(p.op, p.a, wrong_b)}</think>{wrong}" if wrong_b >= 0 else str(wrong)
            else:
                rejected = chosen.split("</think>")[0]  # cut off before the final answer
        conversations += [(p.question, chosen), (p.question, rejected)]
    ids = [tokens for tokens, _ in encode_chats(tokenizer, conversations)]
    return list(zip(ids[0::2], ids[1::2]))
