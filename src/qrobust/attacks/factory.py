"""Building an attack of the catalogue: the one door from a name and params options to an attack object.

The class is imported from the entry's module only here, so a stage imports the code of the attacks it
runs and no other (``dvc.yaml`` lists exactly those modules as its dependencies).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from qrobust.attacks.catalogue import ATTACKS
from qrobust.pipeline.errors import ConfigError


def create_attack(name: str, options: Mapping[str, Any], key: str = "attack.attacks") -> Any:
    """The attack ``name`` with ``options`` over its defaults; a bad option fails naming ``key``."""
    entry = ATTACKS.get(name, key=key)
    checked = entry.check(options, f"{key}.{name}")
    factory = getattr(importlib.import_module(entry.module), entry.factory)
    try:
        return factory(**entry.fixed, **checked)
    except (TypeError, ValueError, AssertionError) as error:
        raise ConfigError(f"{key}.{name}: {dict(options)} rejected by the attack: {error}") from error
