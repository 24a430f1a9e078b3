"""Training loops as library code: classification (and segmentation)."""
