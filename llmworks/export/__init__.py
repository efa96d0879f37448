"""Export stage: HF checkpoints to other forms (GGUF now; LoRA merge, quantization and model cards later)."""
