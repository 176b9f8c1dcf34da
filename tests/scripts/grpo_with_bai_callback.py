"""A plain TRL GRPO script, as a user writes one, with bai's StabilityCallback added: the tests run it on the shipped
tiny demo reasoning model with a reward that pays for short answers, and read what the callback printed.

    python tests/scripts/grpo_with_bai_callback.py MODEL_FOLDER OUT.json [--steps 40]
"""

import argparse
import json

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from bai_core.rl.callback import StabilityCallback


def brevity(completions, **kwargs):
    """Pays for short answers: the reward hack that makes a policy stop reasoning."""
    return [-len(text) / 10 for text in completions]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=5)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    prompts = Dataset.from_dict({"prompt": [f"{a}+{b}=" for a in range(10) for b in range(10)]})
    config = GRPOConfig(output_dir=args.out + ".run", max_steps=args.steps, per_device_train_batch_size=8,
                        num_generations=8, max_completion_length=48, learning_rate=3e-4, logging_steps=1,
                        save_strategy="no", report_to=[], use_cpu=True, seed=0, beta=0.0, temperature=1.0)
    callback = StabilityCallback(every=args.every)
    trainer = GRPOTrainer(model=model, reward_funcs=brevity, args=config, train_dataset=prompts,
                          processing_class=tokenizer, callbacks=[callback])
    trainer.train()
    with open(args.out, "w") as f:
        json.dump({"alarms": [{"detector": a.detector, "step": a.step, "reason": a.reason} for a in callback.alarms],
                   "log_history": trainer.state.log_history, "max_steps": trainer.state.max_steps}, f)


if __name__ == "__main__":
    main()
