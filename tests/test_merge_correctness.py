"""The merge computes exactly the BAI formulas, in every layout and dtype, and its outputs are real checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from bai_core.merge import MANIFEST_FILE, merge, merge_two_stages
from bai_core.merge.config import BaiMergeJob, MergeJob, SftMergeJob


def load_all(folder: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors with the safetensors library (independent of bai's reader)."""
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            tensors.update({name: f.get_tensor(name) for name in f.keys()})
    return tensors


def f32(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float32).numpy()


def expected_bai(family, w: float, alpha: float, dtype: torch.dtype):
    """An independent computation: numpy float32 products and sums, torch only for the final rounding."""
    p, i, r = (load_all(family[role]) for role in ("pretrained", "instruct", "reasoning"))
    w32, w32c, a32, a32c = (np.float32(x) for x in (w, 1 - w, alpha, 1 - alpha))
    sft, bai = {}, {}
    for name in p:
        s = w32 * f32(i[name]) + w32c * f32(r[name])
        sft[name] = torch.from_numpy(s).to(dtype)
        b = a32 * f32(p[name]) + a32c * f32(sft[name])
        bai[name] = torch.from_numpy(b).to(dtype)
    return sft, bai


def assert_same_bits(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].dtype == expected[name].dtype, name
        assert actual[name].shape == expected[name].shape, name
        assert torch.equal(actual[name].view(torch.uint8), expected[name].view(torch.uint8)), name


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_two_stage_merge_matches_independent_computation(family_factory, tmp_path, dtype):
    family = family_factory(dtype=dtype)
    config = MergeJob(**family, output=tmp_path / "bai", stage1_output=tmp_path / "sft",
                         instruct_weight=0.3, alpha=0.7)
    merge_two_stages(config)
    sft, bai = expected_bai(family, 0.3, 0.7, getattr(torch, dtype))
    assert_same_bits(load_all(tmp_path / "sft"), sft)
    assert_same_bits(load_all(tmp_path / "bai"), bai)
    assert json.loads((tmp_path / "bai" / "config.json").read_text())["torch_dtype"] == dtype


def test_fused_pass_is_bit_identical_to_two_separate_stages(family, tmp_path):
    merge_two_stages(MergeJob(**family, output=tmp_path / "fused", stage1_output=tmp_path / "fused-sft",
                              instruct_weight=0.6, alpha=0.1))
    merge(SftMergeJob(instruct=family["instruct"], reasoning=family["reasoning"],
                      output=tmp_path / "sft", instruct_weight=0.6))
    merge(BaiMergeJob(pretrained=family["pretrained"], sft=tmp_path / "sft",
                      output=tmp_path / "bai", alpha=0.1))
    for fused, separate in [("fused-sft", "sft"), ("fused", "bai")]:
        fused_bytes = (tmp_path / fused / "model.safetensors").read_bytes()
        assert fused_bytes == (tmp_path / separate / "model.safetensors").read_bytes()
    # The stage-1 manifest does not depend on how stage 1 was run: a cache can key on it.
    fused_manifest = json.loads((tmp_path / "fused-sft" / MANIFEST_FILE).read_text())
    separate_manifest = json.loads((tmp_path / "sft" / MANIFEST_FILE).read_text())
    assert fused_manifest == separate_manifest


def test_sharded_inputs_and_outputs_give_the_same_tensors(family_factory, tmp_path):
    single = family_factory()
    sharded = family_factory(shard_bytes=15_000)
    assert (sharded["instruct"] / "model.safetensors.index.json").is_file()
    merge_two_stages(MergeJob(**single, output=tmp_path / "from-single"))
    merge_two_stages(MergeJob(**sharded, output=tmp_path / "from-sharded", max_shard_size="10KB"))
    out = tmp_path / "from-sharded"
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    assert_same_bits(load_all(out), load_all(tmp_path / "from-single"))
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["weight_files"] == shards


def test_output_dtype_can_differ_from_inputs(family, tmp_path):
    merge_two_stages(MergeJob(**family, output=tmp_path / "out", dtype="float32"))
    _, expected = expected_bai(family, 0.5, 0.5, torch.float32)
    # Stage 1 is rounded to the output dtype (float32 here), so this matches a float32 pipeline end to end.
    assert_same_bits(load_all(tmp_path / "out"), expected)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["torch_dtype"] == config["dtype"] == "float32"


def test_weights_at_the_ends_reproduce_an_input(family, tmp_path):
    merge_two_stages(MergeJob(**family, output=tmp_path / "out", instruct_weight=1.0, alpha=0.0))
    assert_same_bits(load_all(tmp_path / "out"), load_all(family["instruct"]))


def test_output_is_a_loadable_generating_checkpoint_with_the_donor_tokenizer(family, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merge_two_stages(MergeJob(**family, output=tmp_path / "out", tokenizer_from="instruct"))
    out = tmp_path / "out"
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    merged = load_all(out)
    assert torch.equal(model.model.embed_tokens.weight.detach(), merged["model.embed_tokens.weight"])
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "1+1"}], add_generation_prompt=True,
                                           tokenize=False)
    assert prompt.endswith("<s>assistant: ")  # the instruct template, not the reasoning one (which opens <think>)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    generated = model.generate(**ids, max_new_tokens=8, do_sample=False, min_new_tokens=8)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 8
    # the donor's generation config, stopping on the ids the merge chose (all three share one eos here)
    written = json.loads((out / "generation_config.json").read_text())
    donors = json.loads((family["instruct"] / "generation_config.json").read_text())
    stops = [s["id"] for s in json.loads((out / MANIFEST_FILE).read_text())["tokenizers"]["stop_ids"]]
    assert written == {**donors, "eos_token_id": stops[0] if len(stops) == 1 else stops}
    assert stops == [tokenizer.eos_token_id]


def test_tied_embeddings_stay_tied(family, tmp_path):
    merge_two_stages(MergeJob(**family, output=tmp_path / "out"))
    assert "lm_head.weight" not in load_all(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is True


def test_tied_and_untied_inputs_merge_into_an_untied_model(family_factory, tmp_path):
    """The Qwen2.5-Math (tied) + R1-Distill (untied) case: tied inputs contribute their embedding as lm_head."""
    from transformers import AutoModelForCausalLM

    tied, untied = family_factory(tied=True), family_factory(tied=False)
    inputs = {"pretrained": tied["pretrained"], "instruct": tied["instruct"], "reasoning": untied["reasoning"]}
    merge_two_stages(MergeJob(**inputs, output=tmp_path / "out", tokenizer_from="pretrained"))
    out = load_all(tmp_path / "out")
    p, i, r = (load_all(inputs[role]) for role in ("pretrained", "instruct", "reasoning"))
    sft = (np.float32(0.5) * f32(i["model.embed_tokens.weight"])
           + np.float32(0.5) * f32(r["lm_head.weight"]))
    sft = torch.from_numpy(sft).to(torch.bfloat16)
    head = np.float32(0.5) * f32(p["model.embed_tokens.weight"]) + np.float32(0.5) * f32(sft)
    assert torch.equal(out["lm_head.weight"], torch.from_numpy(head).to(torch.bfloat16))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is False
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert torch.equal(model.lm_head.weight.detach(), out["lm_head.weight"])


def test_integer_buffers_are_copied_when_identical(editable_family, tmp_path):
    from safetensors.torch import save_file

    for role, folder in editable_family.items():
        tensors = load_all(folder)
        tensors["model.rotary_positions"] = torch.arange(10, dtype=torch.int64)
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    merge_two_stages(MergeJob(**editable_family, output=tmp_path / "out"))
    assert torch.equal(load_all(tmp_path / "out")["model.rotary_positions"], torch.arange(10))


def test_chunking_and_threads_do_not_change_the_result(family, tmp_path):
    from bai_core.io.checkpoint import Checkpoint, check_compatible
    from bai_core.merge.engine import Stage, Term, merge_weights

    inputs = {role: Checkpoint.open(path) for role, path in family.items()}
    names = check_compatible(inputs)
    results = []
    for chunk, workers in [(7, 3), (1 << 20, 1)]:
        out = tmp_path / f"chunk{chunk}"
        out.mkdir()
        stages = [Stage("sft", (Term("instruct", 0.25), Term("reasoning", 0.75))),
                  Stage("bai", (Term("pretrained", 0.4), Term("sft", 0.6)), output=out)]
        merge_weights(inputs, stages, names, workers=workers, chunk_elements=chunk)
        results.append((out / "model.safetensors").read_bytes())
    assert results[0] == results[1]


def test_manifest_records_inputs_weights_and_versions(family, tmp_path):
    import bai_core
    from bai_core.fingerprint import fingerprint_folder

    merge_two_stages(MergeJob(**family, output=tmp_path / "out", instruct_weight=0.25, alpha=0.75))
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text())
    assert manifest["bai_version"] == bai_core.__version__
    assert manifest["stages"] == [
        {"name": "sft", "terms": [{"source": "instruct", "weight": 0.25}, {"source": "reasoning", "weight": 0.75}]},
        {"name": "bai", "terms": [{"source": "pretrained", "weight": 0.75}, {"source": "sft", "weight": 0.25}]},
    ]
    assert manifest["dtype"] == "bfloat16" and manifest["tokenizer_from"] == "reasoning"
    for role, folder in family.items():
        assert manifest["inputs"][role] == {"uri": folder.resolve().as_uri(), "fingerprint": fingerprint_folder(folder)}


def test_checkpoints_saved_by_transformers_merge_and_load(tmp_path):
    """A real transformers layout (Qwen2, with attention biases, saved by save_pretrained), not our synthetic one."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=96, tie_word_embeddings=True, dtype="float32")
    paths = {}
    for seed, role in enumerate(("pretrained", "instruct", "reasoning")):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
        paths[role] = tmp_path / role
        model.save_pretrained(paths[role])
    merge_two_stages(MergeJob(**paths, output=tmp_path / "out", alpha=0.2, instruct_weight=0.7))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    p, i, r = (load_all(paths[role]) for role in ("pretrained", "instruct", "reasoning"))
    name = "model.layers.1.self_attn.q_proj.bias"
    sft = np.float32(0.7) * f32(i[name]) + np.float32(1 - 0.7) * f32(r[name])
    expected = np.float32(0.2) * f32(p[name]) + np.float32(1 - 0.2) * sft
    assert np.array_equal(merged.state_dict()[name].numpy(), expected)
    out = merged.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (1, 7)
