"""Tiny random-weight stand-ins of real model families, carrying their real side files (tests/data/real-families).

Each stand-in keeps what decides how a checkpoint is merged, prompted and stopped exactly as the real repo has it:
config.json with only its size keys shrunk (hidden and intermediate sizes, layers, heads; the vocabulary size,
eos/bos ids, tie flag, context length and rope settings stay real), the real tokenizer_config.json (its chat template
and special tokens), special_tokens_map.json and generation_config.json where found, and a tokenizer.json whose added
tokens sit at their real ids with their real texts. The base vocabulary under them is a stand-in too (byte-level
symbols, then fillers up to the real size): the real tokenizer.json files (7-9 MB) were not found in full.
Weights are random, bf16, saved by transformers (sharded where the real repo shards).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

REAL = Path(__file__).parent / "data" / "real-families"
SHRUNK = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "num_key_value_heads": 1, "head_dim": 8, "max_window_layers": 2}


@dataclass(frozen=True)
class Member:
    """Where a stand-in's files come from (folders under tests/data/real-families)."""

    config: str
    tokenizer: str  # tokenizer_config.json, and special_tokens_map.json if there
    tokenizer_config: str = "tokenizer_config.json"  # the file's name there (a non-verbatim copy is named so)
    generation: str | None = None  # a folder with generation_config.json
    added_tokens: str | None = None  # a JSON list of tokenizer.json added tokens; else tokenizer_config's decoder
    shard: bool = False


QWEN_MATH = "Qwen--Qwen2.5-Math-1.5B"
R1_QWEN = "deepseek-ai--DeepSeek-R1-Distill-Qwen-1.5B"
R1_QWEN_32B = "deepseek-ai--DeepSeek-R1-Distill-Qwen-32B"  # the same tokenizer, files found verbatim
LLAMA, LLAMA_INSTRUCT = "meta-llama--Llama-3.2-1B", "meta-llama--Llama-3.2-1B-Instruct"
LLAMA_3B_INSTRUCT = "meta-llama--Llama-3.2-3B-Instruct"  # the 1B-Instruct's tokenizer files were not found
R1_LLAMA = "deepseek-ai--DeepSeek-R1-Distill-Llama-8B"
MIXTRAL, MIXTRAL_INSTRUCT = "mistralai--Mixtral-8x7B-v0.1", "mistralai--Mixtral-8x7B-Instruct-v0.1"

FAMILIES: dict[str, dict[str, Member]] = {
    # The paper's trio. Qwen2.5-Math-1.5B-Instruct's own files were not found: its stand-in carries the base's
    # (the same tokenizer, and the same Qwen2.5-Math chat template the base repo ships).
    "qwen-math-r1": {
        "pretrained": Member(QWEN_MATH, QWEN_MATH, generation=QWEN_MATH),
        "instruct": Member(QWEN_MATH, QWEN_MATH, generation=QWEN_MATH),
        "reasoning": Member(R1_QWEN, R1_QWEN_32B, generation=R1_QWEN_32B,
                            added_tokens=f"{R1_QWEN}/tokenizer.added_tokens.quote.json", shard=True),
    },
    # Llama 3: the base, the instruct model, and R1's distill onto Llama 3 as the reasoning member (its tokenizer
    # renames reserved ids; its config is the 1B-Instruct's, shrunk like the rest).
    "llama-3": {
        "pretrained": Member(LLAMA, LLAMA, generation=LLAMA),
        "instruct": Member(LLAMA_INSTRUCT, LLAMA_3B_INSTRUCT, generation=LLAMA_3B_INSTRUCT),
        "reasoning": Member(LLAMA_INSTRUCT, R1_LLAMA, tokenizer_config="tokenizer_config.json.nonverbatim"),
    },
    # An MoE family: Mixtral's 8 experts and routers merge like any other tensor. No reasoning Mixtral exists; the
    # instruct model's files stand for that member too.
    "mixtral": {
        "pretrained": Member(MIXTRAL, MIXTRAL, generation=MIXTRAL),
        "instruct": Member(MIXTRAL_INSTRUCT, MIXTRAL_INSTRUCT, generation=MIXTRAL_INSTRUCT),
        "reasoning": Member(MIXTRAL_INSTRUCT, MIXTRAL_INSTRUCT, generation=MIXTRAL_INSTRUCT, shard=True),
    },
}


def shrunk_config(member: Member) -> dict:
    config = json.loads((REAL / member.config / "config.json").read_text())
    return {key: SHRUNK.get(key, value) for key, value in config.items()}


def added_tokens(member: Member) -> list[tuple[int, str, bool]]:
    """(id, text, special) of the real tokenizer's added tokens, in id order."""
    if member.added_tokens:
        entries = json.loads((REAL / member.added_tokens).read_text())
        return sorted((e["id"], e["content"], e["special"]) for e in entries)
    decoder = json.loads((REAL / member.tokenizer / member.tokenizer_config).read_text())["added_tokens_decoder"]
    return sorted((int(i), e["content"], e.get("special", True)) for i, e in decoder.items())


def write_tokenizer_json(member: Member, path: Path, corpus: str = "") -> None:
    """A byte-level BPE whose added tokens sit at their real ids: the base vocabulary is the 256 byte symbols, the
    words of `corpus` (with the merges that build them, so a prompt is a few dozen tokens, not one per character),
    then fillers, up to the first added id above them, or the config's vocabulary size where every added token is in
    the base vocabulary (Mixtral's <unk>, <s>, </s> at 0-2, which keep their place)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    tokens = added_tokens(member)
    inside = {token_id: text for token_id, text, _ in tokens}
    above = [token_id for token_id in inside if token_id >= 256 + len([i for i in inside if i < 256])]
    first_added = min(above) if above else shrunk_config(member)["vocab_size"]
    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    merges, pieces = [], sorted(ByteLevel.alphabet())
    for word in dict.fromkeys(piece for piece, _ in pre_tokenizer.pre_tokenize_str(corpus)):
        for end in range(2, len(word) + 1):  # "Ġsold": Ġs, Ġso, Ġsol, Ġsold, each from the one before
            if word[:end] not in pieces:
                merges.append((word[:end - 1], word[end - 1]))
                pieces.append(word[:end])
    symbols = iter(pieces)
    vocab: dict[str, int] = {}
    for token_id in range(first_added):
        text = inside.get(token_id) or next(symbols, None) or f"<filler_{token_id}>"
        vocab[text] = token_id
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    for token_id, text, special in tokens:
        token = AddedToken(text, special=special, normalized=False)
        (tokenizer.add_special_tokens if special else tokenizer.add_tokens)([token])
        assert tokenizer.token_to_id(text) == token_id, (text, token_id, tokenizer.token_to_id(text))
    tokenizer.save(str(path))


def write_stand_in(member: Member, folder: Path, seed: int, corpus: str = "") -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = shrunk_config(member)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.bfloat16)
    model.save_pretrained(folder, max_shard_size="2MB" if member.shard else "5GB")
    (folder / "generation_config.json").unlink(missing_ok=True)  # transformers' own; the real one, if found, below
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_tokenizer_json(member, folder / "tokenizer.json", corpus)
    shutil.copyfile(REAL / member.tokenizer / member.tokenizer_config, folder / "tokenizer_config.json")
    if (REAL / member.tokenizer / "special_tokens_map.json").is_file():
        shutil.copyfile(REAL / member.tokenizer / "special_tokens_map.json", folder / "special_tokens_map.json")
    if member.generation:
        shutil.copyfile(REAL / member.generation / "generation_config.json", folder / "generation_config.json")
    return folder


def write_family(name: str, root: Path, corpus: str = "") -> dict[str, Path]:
    """{role: folder} of the family's three stand-ins (different random weights each); `corpus`: text whose words
    their tokenizers hold as single tokens (the same for all three)."""
    return {role: write_stand_in(member, root / role, seed, corpus) for seed, (role, member) in
            enumerate(FAMILIES[name].items())}
