"""Training: the recipes params may name (``catalogue``, torch-free, with the fit's settings), the
recipes (``recipes``: standard, adversarial, TRADES, distillation, Defensive Quantization) and the loop (``loop``)."""
