"""The processor a benchmark ran on, for the line that prints its ratios (speeds differ between CPUs)."""

from __future__ import annotations

import platform
from pathlib import Path

# Vector instructions that change which code path is fast: the int8 screen of UDIG's search needs an int8
# dot product (VNNI or AMX), and a VM may hide a CPU's AVX-512 (its model name then still reads the same).
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def processor() -> str:
    """The CPU's model name and vector instructions from /proc/cpuinfo, else what the platform module knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    if name is None:
        return platform.processor() or platform.machine()
    shown = [flag for flag in VECTOR_FLAGS if flag in flags]
    return f"{name} ({', '.join(shown) or 'no AVX2'})"
