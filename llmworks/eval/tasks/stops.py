"""Stop strings for plain-text generation (no chat template): the end-of-turn tokens of common templates."""

GEN_STOP = ("</s>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>")
