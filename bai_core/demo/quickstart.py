"""`bai demo`: build a tiny synthetic family, BAI-merge it, and show that the result is a working model.

The weights are random, so the generated text is noise; what the demo shows is the mechanics: three checkpoints in,
two complete Hugging Face checkpoints out (M_sft and M_bai), a manifest, and a model that transformers loads.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from bai_core.config import MergeConfig
from bai_core.merge import MANIFEST_FILE, bai_merge
from bai_core.synthetic import ROLES, SyntheticSpec, write_synthetic_family

DEMO_SPEC = SyntheticSpec(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=512)


def run_demo(folder: Path, seed: int = 0, out=sys.stdout) -> dict:
    family_dir = folder / "family"
    if not all((family_dir / role / "config.json").is_file() for role in ROLES):
        shutil.rmtree(family_dir, ignore_errors=True)
        print(f"building a tiny synthetic family in {family_dir} ...", file=out)
        write_synthetic_family(family_dir, DEMO_SPEC, seed=seed)
    paths = {role: family_dir / role for role in ROLES}
    config = MergeConfig(
        **paths,
        output=folder / "bai",
        stage1_output=folder / "sft",
        instruct_weight=0.5,
        alpha=0.5,
        overwrite=True,
    )
    result = bai_merge(config)
    manifest = json.loads((result.output / MANIFEST_FILE).read_text())
    print(f"merged in {result.seconds:.2f} s:  {manifest['formula']}", file=out)
    for role, entry in manifest["inputs"].items():
        print(f"  {role:<10} {entry['fingerprint'][:19]}  {entry['path']}", file=out)
    print(f"  M_sft -> {result.stage1_output}\n  M_bai -> {result.output}", file=out)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(result.output)
    tokenizer = AutoTokenizer.from_pretrained(result.output)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 12 + 30?"}], add_generation_prompt=True, tokenize=False
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    generated = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    text = tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:])
    print(f"transformers loads M_bai ({model.num_parameters():,} parameters, {model.dtype}); "
          f"greedy sample from random weights: {text!r}", file=out)
    return {"output": str(result.output), "stage1_output": str(result.stage1_output), "manifest": manifest}
