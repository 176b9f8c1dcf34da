"""The train stage past one process, in one place: `config.py` (train.launch, the `accelerate launch` command),
`ranks.py` (start, follow and stop this machine's ranks), `machines.py` (machines meeting through the store), and
`worker.py` (one rank: `python -m bai_core.rl.launch.worker JOB.json`, also under torchrun, srun or a pod).

Imported by the train stage only when a run has more than one process; nothing here imports the stage."""
