"""Building an attack of the catalogue: the one door from a name and params options to an attack object.

The class is imported from the entry's module only here, so a stage imports the code of the attacks it
runs and no other (``dvc.yaml`` lists exactly those modules as its dependencies).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from qrobust.attacks.catalogue import ATTACKS
from qrobust.attacks.threats import Kind
from qrobust.pipeline.errors import ConfigError


def create_attack(name: str, options: Mapping[str, Any], key: str = "attack.attacks", reference: Any = None) -> Any:
    """The attack ``name`` with ``options`` over its defaults; a bad option fails naming ``key``. A
    differential attack (DIVA) also takes ``reference``, the float model whose prediction must stay right."""
    entry = ATTACKS.get(name, key=key)
    checked = entry.check(options, f"{key}.{name}")
    factory = getattr(importlib.import_module(entry.module), entry.factory)
    differential = entry.kind is Kind.DIFFERENTIAL
    if differential and reference is None:
        raise ValueError(f"{name}: a differential attack needs the float model beside the quantized one")
    try:
        return factory(**entry.fixed, **checked, **({"reference": reference} if differential else {}))
    except (TypeError, ValueError, AssertionError) as error:
        raise ConfigError(f"{key}.{name}: {dict(options)} rejected by the attack: {error}") from error
