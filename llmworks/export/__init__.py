"""Export stage: merge adapters, HF → GGUF + llama.cpp quantization, int8/int4 for transformers, model cards.

    from llmworks.export import merge, export_gguf, quantize
    merge("out/run", "out/merged")                      # base + LoRA/DoRA → HF directory
    export_gguf("out/merged", "out/m.gguf", "q4_k_m")   # → GGUF for llama.cpp / Ollama / LM Studio
    quantize("out/merged", "int8", "out/m-int8")        # → weight-only int8 for transformers

Each returns an `ExportReport` and writes it (report.json + a model card) next to its output.
"""

from llmworks.export.gguf import export_gguf
from llmworks.export.hf_quant import quantize
from llmworks.export.merge import merge
from llmworks.export.report import ExportReport

__all__ = ["ExportReport", "export_gguf", "merge", "quantize"]
