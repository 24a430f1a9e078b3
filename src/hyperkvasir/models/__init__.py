"""Model registry: the paper's models, modern timm models, and pretrained-weight resolution."""

from hyperkvasir.models.registry import MODELS, ModelSpec, create_model, model_names

__all__ = ["MODELS", "ModelSpec", "create_model", "model_names"]
