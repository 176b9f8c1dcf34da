"""The demo family's sizes. Only the values are part of a family's recipe id (not this file's text), so tuning
one size leaves the other's cached families valid."""

from bai_core.demo.recipe import FamilySize, Schedule

# The fine-tunes stay near the base: a few hundred steps at a low learning rate, a quarter of each batch replayed
# from the pretraining text. Chosen on a dev split of the train problems (benchmarks/family_sweep.py; the eval split
# was never looked at), see the README.
SIZES = {
    "test": FamilySize(hidden=64, layers=2, heads=4, intermediate=192,
                       pretrain=Schedule(150, batch_size=16), instruct=Schedule(500, batch_size=16),
                       reasoning=Schedule(400, batch_size=16), reward=Schedule(40, batch_size=16),
                       train_problems=4000, eval_problems=64),
    "demo": FamilySize(hidden=128, layers=4, heads=4, intermediate=512,
                       pretrain=Schedule(2400),
                       instruct=Schedule(300, learning_rate=3e-4, replay=0.25),
                       reasoning=Schedule(500, learning_rate=3e-4, replay=0.25),
                       reward=Schedule(200), reward_init="instruct"),
}
