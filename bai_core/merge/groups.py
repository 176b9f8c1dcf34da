"""Tensor groups, for merge weights that differ by part of the network: embeddings, attention, MLP (dense or
experts), norms and the output head. A tensor's group comes from its name, as Hugging Face checkpoints write them;
a name no rule knows belongs to no group and takes the stage's own weight.

The rules are checked against real checkpoints' tensor names (tests/data/tensor-names/)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

GroupName = Literal["embeddings", "attention", "mlp", "norms", "lm_head"]
GROUPS: tuple[GroupName, ...] = ("embeddings", "attention", "mlp", "norms", "lm_head")

# Checked in this order: a norm inside an attention or MLP block (q_norm, k_norm, kv_a_layernorm) is a norm.
_RULES: tuple[tuple[GroupName, re.Pattern], ...] = (
    ("lm_head", re.compile(r"(^|\.)lm_head\.|^(embed_out|output)\.")),
    ("norms", re.compile(r"norm|(^|\.)ln_\w*\.")),
    ("embeddings", re.compile(r"(embed_tokens|embed_positions|embed_in|(^|\.)wte|(^|\.)wpe|word_embeddings|"
                              r"position_embeddings|(^|\.)tok_embeddings)\.")),
    ("attention", re.compile(r"(self_attn|(^|\.)attn|attention)\.")),
    ("mlp", re.compile(r"((^|\.)mlp|feed_forward|block_sparse_moe|(^|\.)ffn|experts)\.")),
)


@lru_cache(maxsize=65536)  # the engine asks once per chunk; a tensor is many chunks
def group_of(tensor: str) -> GroupName | None:
    """The group of a tensor by its name (model.layers.0.self_attn.q_proj.weight -> attention), or None."""
    for group, rule in _RULES:
        if rule.search(tensor):
            return group
    return None
