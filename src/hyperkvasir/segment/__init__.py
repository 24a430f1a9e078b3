"""Polyp segmentation baseline: U-Net decoder on a timm encoder, PraNet-family losses, training, boxes."""
