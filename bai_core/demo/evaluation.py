"""What the demo family's models do on held-out problems: greedy answers to chat prompts (and to the plain-text
format the base was trained on), the reward model's pairwise accuracy, and the BAI merges over the paper's grid."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bai_core.demo.arithmetic import Problem, extract_answer

MERGE_INSTRUCT_WEIGHT = 0.5
MERGE_ALPHAS = (0.1, 0.2, 0.5, 0.7, 0.9)  # the paper's ratio ablation
CHAT_TOKENS = 64  # about twice a reasoning answer: an answer still going at the limit is not finished


def evaluate_lm(model, tokenizer, items: list[Problem], batch_size: int = 64, max_new_tokens: int = CHAT_TOKENS,
                plain_text: bool = True) -> dict:
    """Greedy answers to held-out chat prompts: accuracy, think-block rate, mean answer length in tokens and the share
    of finished answers (stopped before the limit, ending in a number); and accuracy on the plain-text format the
    base was trained on (completing '... so Ann has'). (`generate` runs without gradients by itself.)"""
    tokenizer.padding_side = "left"
    correct = think = lengths = finished = plain_correct = 0
    for start in range(0, len(items), batch_size):
        batch = items[start: start + batch_size]
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p.question}],
                                                 add_generation_prompt=True, tokenize=False) for p in batch]
        for p, (text, n_tokens, stopped) in zip(batch, _generate(model, tokenizer, prompts, max_new_tokens)):
            style = "reasoning" if "<think>" in text else "instruct"
            answer = extract_answer(text, style)
            think += style == "reasoning"
            correct += answer == p.answer
            lengths += n_tokens
            finished += stopped and answer is not None and text.rstrip()[-1:].isdigit()
        if plain_text:
            plain_prompts = [tokenizer.bos_token + p.plain().split(", so ")[0] + f", so {p.name} has" for p in batch]
            for p, (text, _, _) in zip(batch, _generate(model, tokenizer, plain_prompts, 6)):
                plain_correct += extract_answer(text, "instruct") == p.answer
    n = len(items)
    report = {"accuracy": round(correct / n, 3), "think_rate": round(think / n, 3),
              "mean_answer_tokens": round(lengths / n, 1), "finished_rate": round(finished / n, 3)}
    if plain_text:
        report["plain_text_accuracy"] = round(plain_correct / n, 3)
    return report


def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[tuple[str, int, bool]]:
    """(text, tokens before the end of sequence, stopped by it) per prompt."""
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    results = []
    for row in output[:, inputs["input_ids"].shape[1]:].tolist():
        stopped = tokenizer.eos_token_id in row
        if stopped:
            row = row[: row.index(tokenizer.eos_token_id)]
        results.append((tokenizer.decode(row, skip_special_tokens=True), len(row), stopped))
    return results


def evaluate_reward(model, pairs: list[tuple[list[int], list[int]]], pad_id: int, think_id: int) -> dict:
    """Pairwise accuracy on (chosen, rejected) pairs, overall and per answer style: brief answers (telling 42 from 43
    takes the arithmetic) and reasoning answers (a wrong trace computes another problem, or the answer is cut off)."""
    from bai_core.demo.training import reward_scores

    chosen = reward_scores(model, [c for c, _ in pairs], pad_id)
    rejected = reward_scores(model, [r for _, r in pairs], pad_id)
    wins = [c > r for c, r in zip(chosen, rejected)]
    by_style = {"brief": [w for w, (c, _) in zip(wins, pairs) if think_id not in c],
                "reasoning": [w for w, (c, _) in zip(wins, pairs) if think_id in c]}
    return {"pairwise_accuracy": round(sum(wins) / len(pairs), 3),
            **{f"{style}_pairs_accuracy": round(sum(w) / max(1, len(w)), 3) for style, w in by_style.items()},
            "mean_chosen_score": round(sum(chosen) / len(chosen), 3),
            "mean_rejected_score": round(sum(rejected) / len(rejected), 3)}


def evaluate_merges(family: Path, tokenizer, items: list[Problem]) -> list[dict]:
    """M_sft (w = 0.5) and M_bai at each alpha of the grid, merged by the pipeline's own engine (tokenizer from
    reasoning, as in the pipeline), each scored like a member."""
    from transformers import LlamaForCausalLM

    from bai_core.merge import merge_two_stages
    from bai_core.merge.config import MergeJob

    rows = []
    with tempfile.TemporaryDirectory(prefix="bai-family-merges-") as scratch:
        for alpha in MERGE_ALPHAS:
            out = Path(scratch) / f"alpha{alpha:g}"
            first = alpha == MERGE_ALPHAS[0]
            merge_two_stages(MergeJob(pretrained=family / "pretrained", instruct=family / "instruct",
                                      reasoning=family / "reasoning", output=out / "bai",
                                      stage1_output=out / "sft" if first else None,
                                      instruct_weight=MERGE_INSTRUCT_WEIGHT, alpha=alpha))
            named = ([("M_sft", None, out / "sft")] if first else []) + [("M_bai", alpha, out / "bai")]
            for model_name, merge_alpha, folder in named:
                metrics = evaluate_lm(LlamaForCausalLM.from_pretrained(folder), tokenizer, items, plain_text=False)
                rows.append({"model": model_name, "instruct_weight": MERGE_INSTRUCT_WEIGHT, "alpha": merge_alpha,
                             **metrics})
    return rows
