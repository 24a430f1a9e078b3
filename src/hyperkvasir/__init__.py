"""hyperkvasir: the HyperKvasir endoscopy dataset as a reproducible benchmark and model-building platform.

The notebook face (``HyperKvasirClassification``, ``HyperKvasirSegmentation``, ``HyperKvasirVideoFrames``,
``load_model``) is imported on first use, so the command line starts without loading torch.
"""

from hyperkvasir.data.taxonomy import CLASSES, ClassInfo, lookup
from hyperkvasir.version import __version__

_API = ("HyperKvasirClassification", "HyperKvasirSegmentation", "HyperKvasirVideoFrames", "load_model")
__all__ = ["CLASSES", "ClassInfo", "lookup", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from hyperkvasir import api

        return getattr(api, name)
    raise AttributeError(f"module 'hyperkvasir' has no attribute {name!r}")
