"""The evaluate stage's configuration (the pipeline's `evaluate:` section): the suite, which models, and lm-eval's
settings."""

from __future__ import annotations

import typing
from typing import Literal

from pydantic import Field, model_validator

from bai_core.settings import Strict

EvalModel = Literal["pretrained", "instruct", "reasoning", "sft", "bai", "actor"]
EVAL_MODELS = typing.get_args(EvalModel)  # what the evaluate stage can score


class EvaluateSettings(Strict):
    """Benchmark scoring by lm-evaluation-harness (HFLM over the local checkpoint); bai adds no scoring code."""

    suite: str | list[str] = Field("demo", description="demo (the demo family's eval split), paper (the lm-eval "
                                                        "tasks nearest the paper's Table 1), or lm-eval task names: "
                                                        "a list or a comma-separated string.")
    limit: int | None = Field(None, gt=0, description="Score only the first N examples of each task (a smoke test: "
                                                      "not comparable with full runs).")
    batch_size: int = Field(64, gt=0)
    max_gen_toks: int | None = Field(None, gt=0, description="Tokens an answer may have; default: each task's own "
                                                            "(bai_demo: 64). A reasoning model needs room for its "
                                                            "think block.")
    apply_chat_template: bool = Field(True, description="Prompt through the model's chat template.")
    think_end_token: str | None = Field("</think>", description="Only the text after the last one is scored "
                                                                "(lm-eval's think_end_token); null scores it all.")
    enable_thinking: bool | None = Field(None, description="Passed to chat templates that switch thinking on and "
                                                           "off (Qwen3 style); null: the template's default.")
    models: list[EvalModel] | None = Field(None, description="Which models to score (default: the RL actor when "
                                                             "train runs, else M_bai).")
    demo_family: str | None = Field(None, pattern=r"^[a-z]+@\d+$",
                                    description="size@seed of the demo family whose eval split the demo suite "
                                                "scores (default: read from the demo:// sources).")
    device: str | None = Field(None, description="cpu, cuda, cuda:0 ...; default: cuda when there is one.")
    confirm_run_unsafe_code: bool = Field(False, description="Let tasks that execute the model's code run it "
                                                             "(MBPP+; lm-eval's confirm_run_unsafe_code).")
    backend: Literal["hf", "vllm"] = Field("hf", description="lm-eval's model type: hf (transformers; measures "
                                                             "answer lengths) or vllm (where vLLM is installed).")
    deployment: str | None = Field(None, description="Score as this deployment (e.g. bai-evaluate/gpu) on its work "
                                                     "pool; unset: score in this process.")
    processes: int = Field(1, gt=0, description="hf backend: score data-parallel in this many processes, one per "
                                                "GPU (`accelerate launch`, lm-eval's own way); lm-eval splits the "
                                                "questions only over CUDA devices.")
    tensor_parallel_size: int = Field(1, gt=0, description="vllm backend: the GPUs each copy of the model is split "
                                                           "over (vLLM's tensor_parallel_size).")
    data_parallel_size: int = Field(1, gt=0, description="vllm backend: copies of the model, each scoring a share of "
                                                         "the questions (vLLM's data_parallel_size).")

    @property
    def task_names(self) -> list[str]:
        """The suite as given: a named suite's name alone, or the listed lm-eval task names."""
        names = self.suite if isinstance(self.suite, list) else self.suite.split(",")
        return [name.strip() for name in names if name.strip()]

    @model_validator(mode="after")
    def _consistent(self):
        if not self.task_names:
            raise ValueError("the suite names no task; give demo, paper, or lm-eval task names")
        if self.models is not None and not self.models:
            raise ValueError("no model to score; leave it unset for the default, or name some of "
                             + ", ".join(EVAL_MODELS))
        if self.models is not None and len(set(self.models)) < len(self.models):
            raise ValueError(f"models: each model is scored once; {self.models} names one twice")
        if self.backend == "hf" and max(self.tensor_parallel_size, self.data_parallel_size) > 1:
            raise ValueError("tensor_parallel_size and data_parallel_size are the vllm backend's; with hf, set "
                             "processes")
        if self.backend == "vllm" and self.processes > 1:
            raise ValueError("processes is the hf backend's; with vllm, set data_parallel_size (and "
                             "tensor_parallel_size)")
        return self
