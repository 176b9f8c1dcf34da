"""A character-level tokenizer built with the `tokenizers` library, saved in Hugging Face format.

One token per printable ASCII character, plus <pad>, <s>, </s> (special) and <think>, </think>. The think tags are
ordinary added tokens, not special ones: TRL and lm-eval decode with skip_special_tokens=True and would strip them.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]
THINK_TOKENS = ["<think>", "</think>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant: {% endif %}"
)


def write_char_tokenizer(folder: Path, chat_template: str, vocab_size: int) -> None:
    """Write the tokenizer (with `chat_template`) into `folder`; its vocabulary fits in `vocab_size` ids."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = list(dict.fromkeys(string.printable))
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + chars)}
    if len(vocab) + len(THINK_TOKENS) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is too small for the character tokenizer ({len(vocab) + 2})")
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="?"))  # no merges: one token per character
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="?"
    )
    fast.add_tokens(THINK_TOKENS)
    fast.chat_template = chat_template
    fast.save_pretrained(str(folder))
