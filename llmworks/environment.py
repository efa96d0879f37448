"""Process set-up shared by the CLI and scripts (the demo, benchmarks): offline, and quiet.

Kept free of heavy imports: it must run before transformers or huggingface_hub are imported.
"""

from __future__ import annotations

import logging
import os
import warnings


def configure_environment() -> None:
    """Offline, and quiet about other libraries' chatter; for the CLI and for scripts such as the demo."""
    # Nothing downloads at run time: every model is a local path, an installed package or a cache entry.
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Library chatter (weight-loading bars, deprecation notes, optional-kernel notices) is not ours to show.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # torchao (imported by peft) reports its CUDA-only kernels failing to load, and torch's pytree warns about
    # torchao's enums: nothing a CPU user can act on.
    for name in ("bitsandbytes", "torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
