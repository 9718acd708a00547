"""What every stage imports: the params.yaml settings and the registries they are validated against
(architectures' data, quantizers, attacks, defenses, training recipes) with their implementations.

``settings.py`` checks every section of params.yaml in every stage, so that a bad attack name fails
before training; it therefore reaches each module here. dvc.yaml lists this folder as one dependency
of every stage (one lock entry instead of twenty), and tests/test_pipeline_deps.py checks that this
stays exact: a module that some stage does not import belongs outside the folder.
``qrobust.models`` stays outside although every stage imports it: the ONNX exporter writes its class
paths (``qrobust.models.ResidualBlock``) into every float model, so moving it would change the bytes
of every model.
"""
