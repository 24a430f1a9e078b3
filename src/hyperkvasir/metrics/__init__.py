"""Metrics: classification (scikit-learn's definitions, as the paper) and segmentation (toolbox definitions)."""
