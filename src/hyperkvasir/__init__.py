"""hyperkvasir: the HyperKvasir endoscopy dataset as a reproducible benchmark and model-building platform."""

from hyperkvasir.data.taxonomy import CLASSES, ClassInfo, lookup

__version__ = "0.1.0"
__all__ = ["CLASSES", "ClassInfo", "lookup", "__version__"]
