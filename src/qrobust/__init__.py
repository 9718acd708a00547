"""qrobust: adversarial robustness of neural networks before and after post-training quantization."""

__version__ = "0.1.0"
