"""Test-time defenses: the catalogue as data (``catalogue``, torch-free), the preprocessors
(``preprocessors``), what an adaptive attacker differentiates (``views``), the systems as deployed (``deployed``),
the two made from a catalogue entry (``system``), the detector-aware attack and the defense study (``study``)."""
