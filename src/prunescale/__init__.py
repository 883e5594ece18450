"""prunescale: prune reasoning LLMs and measure how their test-time scaling changes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("prunescale")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

from prunescale.errors import PrunescaleError  # noqa: E402

__all__ = ["PrunescaleError", "__version__"]
