"""Deployed models: runtimes (ONNX Runtime sessions, torch modules) and ONNX export (``runtime``), and one
backend per artefact kind (``backends``: ONNX QDQ, INC PT2E, INC weight-only) that opens, twins and measures it."""
