"""Scoring: the one result record and its statistics (``results``: Wilson, paired, clustered), scoring
every adversarial set on every deployed runtime (``scoring``) and the per-sample worst case (``worstcase``)."""
