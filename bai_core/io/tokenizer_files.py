"""What a checkpoint folder's tokenizer and config files say, read as data (no transformers, no torch).

A merge averages embedding rows by id, so what each id *means* in each input matters: the Qwen2.5-Math and
R1-Distill tokenizers share a vocabulary but give 7 of their 22 added ids other texts (151645 is `<|im_end|>` in one,
`<｜Assistant｜>` in the other). `TokenizerFacts.read` collects what decides that and how the model is prompted and
stopped: added tokens by id, the base vocabulary's size and digest, the chat template (and what its generation
prompt opens), the bos/eos/pad ids, and the context the config allows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.io.chat_template import ChatTemplate

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
GENERATION_CONFIG = "generation_config.json"
SPECIAL_ROLES = ("bos_token", "eos_token", "pad_token", "unk_token")


@dataclass(frozen=True)
class TokenizerFacts:
    folder: Path
    added: dict[int, str]  # added (special or not) tokens by id
    base_vocab_size: int | None  # tokenizer.json's model vocabulary (None: no tokenizer.json)
    base_vocab_digest: str | None
    special: dict[str, str | None]  # bos_token / eos_token / ... -> its text
    config_eos: tuple[int, ...]  # config.json's eos_token_id
    generation_eos: tuple[int, ...]  # generation_config.json's eos_token_id
    chat_template: ChatTemplate | None
    config: dict = field(repr=False, default_factory=dict)
    _ids: dict[str, int] = field(repr=False, default_factory=dict)  # text -> id (added tokens and vocabulary)
    _texts: dict[int, str] = field(repr=False, default_factory=dict)  # id -> text

    @classmethod
    def read(cls, folder: Path) -> TokenizerFacts:
        config = _json(folder / "config.json") or {}
        tokenizer_json = _json(folder / TOKENIZER_JSON)
        tokenizer_config = _json(folder / TOKENIZER_CONFIG) or {}
        special_map = _json(folder / SPECIAL_TOKENS_MAP) or {}
        generation = _json(folder / GENERATION_CONFIG) or {}

        added: dict[int, str] = {}
        ids: dict[str, int] = {}
        base_size = digest = None
        if tokenizer_json is not None:
            for token in tokenizer_json.get("added_tokens") or []:
                added[int(token["id"])] = token["content"]
            vocab = (tokenizer_json.get("model") or {}).get("vocab")
            if isinstance(vocab, dict):  # BPE, WordPiece, WordLevel: text -> id
                ids.update(vocab)
                base_size = len(vocab)
                digest = _digest(sorted(vocab.items(), key=lambda item: item[1]))
            elif isinstance(vocab, list):  # Unigram: [piece, score] in id order
                ids.update({piece[0]: i for i, piece in enumerate(vocab)})
                base_size = len(vocab)
                digest = _digest([piece[0] for piece in vocab])
        else:  # no tokenizer.json: the added tokens tokenizer_config.json lists, as slow tokenizers keep them
            for token_id, token in (tokenizer_config.get("added_tokens_decoder") or {}).items():
                added[int(token_id)] = token["content"] if isinstance(token, dict) else str(token)
            for text, token_id in (_json(folder / "added_tokens.json") or {}).items():
                added.setdefault(int(token_id), text)
        ids.update({text: token_id for token_id, text in added.items()})

        special = {}
        for role in SPECIAL_ROLES:
            value = tokenizer_config.get(role, special_map.get(role))
            special[role] = value.get("content") if isinstance(value, dict) else value
        return cls(folder=folder, added=added, base_vocab_size=base_size, base_vocab_digest=digest, special=special,
                   config_eos=_ids_of(config.get("eos_token_id")),
                   generation_eos=_ids_of(generation.get("eos_token_id")),
                   chat_template=ChatTemplate.read(folder, tokenizer_config, special), config=config, _ids=ids,
                   _texts={token_id: text for text, token_id in ids.items()})

    def token_id(self, text: str | None) -> int | None:
        return None if text is None else self._ids.get(text)

    def text(self, token_id: int) -> str | None:
        """An id's text where the tokenizer files say it (added tokens and the base vocabulary)."""
        return self.added.get(token_id, self._texts.get(token_id))

    @property
    def eos_ids(self) -> tuple[int, ...]:
        """The ids this checkpoint says end its generations: generation_config.json's, config.json's, then the
        tokenizer's eos token (what `generate` and TRL stop on), in that order, once each."""
        tokenizer_eos = self.token_id(self.special["eos_token"])
        return tuple(dict.fromkeys([*self.generation_eos, *self.config_eos,
                                    *([tokenizer_eos] if tokenizer_eos is not None else [])]))

    @property
    def vocab_size(self) -> int | None:
        """Rows of the embedding (config.json), which bounds every id the tokenizer may produce."""
        return self.config.get("vocab_size")

    @property
    def context_limit(self) -> tuple[int, str] | None:
        """(tokens, the config key saying so) the model attends over: max_position_embeddings, or a sliding window
        where one is in use (Qwen2 configs name one but switch it off with use_sliding_window: false)."""
        limits = [(self.config.get("max_position_embeddings"), "max_position_embeddings")]
        if self.config.get("use_sliding_window", True):
            limits.append((self.config.get("sliding_window"), "sliding_window"))
        limits = [(limit, key) for limit, key in limits
                  if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0]
        return min(limits) if limits else None

    @property
    def context_length(self) -> int | None:
        return None if (limit := self.context_limit) is None else limit[0]


def _ids_of(value) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, int) and not isinstance(v, bool))
    return ()


def _digest(items) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def _json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BaiError(f"{path}: not valid JSON ({e})") from None
