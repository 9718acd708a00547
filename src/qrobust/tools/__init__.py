"""Command-line tools: ``check`` (the whole params file), ``study`` (named overrides in a copy), ``compare``
(two revisions on one page) and ``code_deps`` (the modules each keyed stage imports, for dvc.yaml)."""
