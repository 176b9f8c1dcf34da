"""Reading and writing checkpoints: safetensors files, checkpoint folders, atomic publication."""
