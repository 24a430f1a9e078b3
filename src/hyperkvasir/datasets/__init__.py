"""What the image tasks share: the pre-resized uint8 cache, the albumentations recipes with batched
normalisation, and batching that skips unreadable samples."""
