"""The architectures params may name (``train.archs``), as data: no torch, so params are checked in
milliseconds; ``qrobust.models`` builds each one (tests/test_models.py holds the two lists equal)."""

from __future__ import annotations

# name -> the TinyML design it follows
ARCHITECTURES: dict[str, str] = {
    "lenet": "LeNet-5-like CNN (LeCun et al. 1998)",
    "resnet8": "ResNet-8 of MLPerf Tiny's image classification (Banbury et al. 2021)",
    "dscnn": "depthwise-separable CNN, MobileNet-style (Howard et al. 2017; MLPerf Tiny's DS-CNN)",
}
