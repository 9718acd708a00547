"""Why quantization changes robustness: mechanisms (``mechanisms``: gradient misalignment, bin shift, flip
rates, layer-wise amplification, loss plateaus) and whether minimisation attacks converged (``convergence``)."""
