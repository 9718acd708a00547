"""params.yaml as frozen, checked dataclasses, one module per section; ``study`` checks the whole file
against the torch-free catalogues, so a bad value anywhere stops any stage before it computes."""
