"""Keep freed memory in the process during training, instead of handing it back to the kernel.

Every training step allocates and frees the same large activation buffers. glibc's defaults return big
blocks to the kernel (mmap/munmap, heap trimming), so each step page-faults them in again and the kernel
zero-fills every page: hundreds of thousands of faults per step on SmolLM2-135M. Raising the mmap and trim
thresholds (what the MALLOC_*_ environment variables do at start-up; mallopt does it at run time) makes later
steps reuse the memory. The top pad is what matters most: with it the third step of a SmolLM2-135M LoRA run
page-faults 7 times instead of ~300,000, and takes ~10% less CPU time. Peak memory is unchanged: the blocks
are reused, not added.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_MAX = 32 * 2**20  # glibc's ceiling for the mmap threshold on 64-bit
_KEEP = 2**31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Tune glibc malloc for a training process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, _KEEP) == 1
    ok &= mallopt(_M_TOP_PAD, 2**30) == 1
    return bool(ok)
