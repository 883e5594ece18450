"""What produced a result: package versions, machine, time. Recorded in every output we write."""

from __future__ import annotations

import platform
import time
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("prunescale", "torch", "transformers", "tokenizers", "safetensors", "numpy", "vllm", "math-verify")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict:
    """Versions of the packages that change numbers, plus the machine and a UTC timestamp."""
    import torch  # heavy: the API imports this module at its top, and listing models needs no torch

    device = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "packages": package_versions(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "threads": torch.get_num_threads(),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: the kernel's high-water mark of its own address space
    (``VmHWM``). ``getrusage``'s ``ru_maxrss`` would be wrong for a benchmark's worker: Linux carries it
    over from the parent across fork and exec, so a child reports at least its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not Linux: the closest figure there is (kilobytes on most systems)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
