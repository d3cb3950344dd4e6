"""tdlib: Top-Down Networks (Lelekas et al., CVPRW 2020) in PyTorch.

Importing the package has no side effects: no seeding, no downloads, no global settings.
Sub-modules are imported explicitly (``from tdlib.models import build_model``).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
