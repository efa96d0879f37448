"""llmworks: data -> fine-tune -> export -> serve -> evaluate -> apps, for open LLMs, offline on a CPU."""

import os

# llama.cpp's CPU backend runs its threads under OpenMP, whose workers spin ~300k rounds at each barrier
# before sleeping. When other processes take the cores, a spinning worker holds a core its sibling needs,
# and decoding slows far more than sharing explains: a 64-token request on 2 cores beside 2 busy loops
# took 5.2 s vs 1.0 s quiet; spinning 20k rounds gives 2.3 s loaded and the same 1.0 s quiet. libgomp reads
# this once, when llama.cpp (or torch) loads it, so it is set before any of them is imported.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

__version__ = "0.1.0"
