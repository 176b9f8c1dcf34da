"""The demo model family: its task data, tokenizer and training recipe, the family shipped with bai, and the family as
pipeline artifacts."""
