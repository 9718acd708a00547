"""Attacks: threat models and norms (``threats``), the catalogue of attacks as data (``catalogue``,
torch-free), the one door that builds them (``factory``), the attacks written here (``apgd``, ``autoattack``,
``square``, ``deepfool``), the runner over an epsilon grid (``runner``), the models attacked (``victims``), and the
one reader and writer of adversarial-set files (``sets``)."""
