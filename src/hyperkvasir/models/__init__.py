"""Model registry: the paper's models, modern timm models, and pretrained-weight resolution."""

from hyperkvasir.models.registry import MODELS, NUM_CLASSES, ModelSpec, create_model, model_names

__all__ = ["MODELS", "NUM_CLASSES", "ModelSpec", "create_model", "model_names"]
