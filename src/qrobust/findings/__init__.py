"""Verdicts on the literature's claims: the evidence vocabulary (``evidence``), one rule per claim
(``rules``) beside the claims' text (``claims``), gradient-masking flags (``masking``) and headline metrics
(``headline``)."""
