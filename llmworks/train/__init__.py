"""Fine-tuning: `llmworks train sft | dpo | pretrain` on transformers + peft, fp32 on the CPU."""
