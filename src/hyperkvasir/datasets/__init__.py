"""PyTorch datasets over the manifest and a split, and the pre-resized uint8 cache."""
