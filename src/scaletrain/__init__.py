"""scaletrain: distributed training on this host, a Ray cluster or SLURM, with scaling measured.

Kept import-light: frameworks load only inside the strategy, launcher or workload that needs them.
"""

from scaletrain.contract.errors import ScaletrainError

__version__ = "0.1.0"
__all__ = ["ScaletrainError", "__version__"]
