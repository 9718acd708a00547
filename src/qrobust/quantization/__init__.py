"""Post-training quantization: the catalogue of quantizers (``catalogue``, torch-free), the quantizers
themselves (``quantizers``), and the differentiable twins of quantized models with their verification (``twins``)."""
