"""``python -m qrobust.tools.check [params.yaml]``: the whole params file checked against the catalogues, nothing computed."""

from __future__ import annotations

from qrobust.pipeline import params as c
from qrobust.pipeline.errors import ConfigError
from qrobust.settings.study import validate


def main(argv: list[str] | None = None) -> int:
    """``python -m qrobust.tools.check [params.yaml]``: validate a params file, print what is wrong."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "params.yaml"
    try:
        params = c.load_params(path)
    except ConfigError as error:  # its message names the file
        print(error, file=sys.stderr)
        return 2
    try:
        validate(params)
    except ConfigError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 2
    print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
