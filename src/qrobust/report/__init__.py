"""The report: how numbers read (``format``), tables about models (``model_tables``) and about the study's
verdicts (``study_tables``), figures and DVC plots (``figures``), and the pages (``page``)."""
