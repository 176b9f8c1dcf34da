"""Does the prompt plus what a stage generates fit in the model's context? Said before anything trains or scores.

A merge keeps its donor's config.json, so M_bai's context is the donor's: `tokenizer_from: pretrained` on the
paper's trio gives Qwen2.5-Math-1.5B's 4096 positions, where R1-Distill's config allows 131072 and the paper's
settings ask for 4096 completion tokens after a prompt. A model run past its `max_position_embeddings` (or past a
sliding window in use) degrades silently; bai warns instead, naming the config, its key and the numbers.
"""

from __future__ import annotations

from pathlib import Path

from bai_core.io.tokenizer_files import TokenizerFacts


def context_warning(folder: Path, what: str, new_tokens: int, prompts: list | None = None) -> str | None:
    """A warning when the longest of `prompts` (text, or chat messages rendered by the folder's chat template) plus
    `new_tokens` exceeds the context the folder's config.json allows; None when it fits or nothing says."""
    facts = TokenizerFacts.read(folder)
    if (limit := facts.context_limit) is None:
        return None
    tokens, key = limit
    longest = _longest_prompt(folder, facts, prompts or [], room=tokens - new_tokens)
    if longest + new_tokens <= tokens:
        return None
    prompt = f"the longest prompt ({longest} tokens) plus " if longest else ""
    return (f"{what}: {prompt}{new_tokens} generated tokens exceed the model's context of {tokens} tokens "
            f"({key} in {folder / 'config.json'}); answers past it are cut or degrade. Keep a longer-context "
            "config (merge.tokenizer_from) or generate fewer tokens")


def _longest_prompt(folder: Path, facts: TokenizerFacts, prompts: list, room: int) -> int:
    """The longest prompt in tokens. Every tokenizer bai meets (byte-level BPE, SentencePiece with byte fallback)
    gives at most one token per UTF-8 byte, so the bytes bound it; only when that bound does not fit are the
    prompts tokenized (with transformers) to count exactly."""
    if not prompts:
        return 0
    template = facts.chat_template
    texts = [p if isinstance(p, str) or template is None else template.render(p, add_generation_prompt=True)
             for p in prompts]
    texts = [t if isinstance(t, str) else " ".join(m["content"] for m in t) for t in texts]
    bound = max(len(t.encode()) for t in texts)
    if bound <= room:
        return 0  # fits whatever the tokenizer: not worth a count
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) or bound
