"""qrobust.tools.study writes only into a folder it made or an empty one: never over a checkout or a user's files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from qrobust.pipeline.errors import ConfigError
from qrobust.tools import code_deps
from qrobust.tools.code_deps import CODE_FILE
from qrobust.tools.pipelines import LOCKS, PIPELINES
from qrobust.tools.study import MARKER, materialize
from tests.conftest import ROOT


def test_refuses_the_current_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "clone"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=checkout, check=True)
    (checkout / "notes.txt").write_text("mine")
    monkeypatch.chdir(checkout)
    with pytest.raises(ConfigError, match="is a git work tree"):
        materialize(ROOT, "smoke", Path("."))
    assert (checkout / "notes.txt").read_text() == "mine" and (checkout / ".git").is_dir()


def test_refuses_a_folder_with_other_content(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match=r"holds files this command did not make"):
        materialize(ROOT, "smoke", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "params.yaml"
    target.write_text("seed: 0\n")
    with pytest.raises(ConfigError, match="is a file"):
        materialize(ROOT, "smoke", target)
    assert target.read_text() == "seed: 0\n"


def test_fills_an_empty_folder_and_replaces_only_its_own_study(tmp_path: Path) -> None:
    dest = tmp_path / "smoke"
    dest.mkdir()
    materialize(ROOT, "smoke", dest)
    assert (dest / MARKER).is_file() and all((dest / p).is_file() for p in PIPELINES)
    assert not any((dest / lock).exists() for lock in LOCKS)  # the default study's record says nothing of this one's
    (dest / "stale.txt").write_text("from the last run")
    materialize(ROOT, "smoke", dest)  # a study folder it made: replaced whole
    assert not (dest / "stale.txt").exists() and (dest / "params.yaml").read_text().startswith("# smoke study")
    # A clone of the study does not carry the marker, so it is protected like any checkout.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(dest), str(clone)], check=True)
    with pytest.raises(ConfigError, match="is a git work tree"):
        materialize(ROOT, "smoke", clone)


def test_a_study_gets_the_stages_and_code_deps_of_its_own_attacks(tmp_path: Path) -> None:
    """The smoke study drops most attacks: its dvc.code.yaml lists one attack@ stage per attack it keeps,
    each with the modules that attack imports, and passes the check `make check` runs."""
    dest = materialize(ROOT, "smoke", tmp_path / "smoke")
    attacks = yaml.safe_load((dest / "params.yaml").read_text())["attack"]["attacks"]
    code = yaml.safe_load((dest / CODE_FILE).read_text())
    assert list(code["attack_code"]) == list(attacks) and len(attacks) < 18
    assert "src/qrobust/attacks/square.py" in code["attack_code"]["autoattack"].values()
    assert code_deps.main(["--check", "--root", str(dest)]) == 0
    (dest / "params.yaml").write_text((dest / "params.yaml").read_text().replace("  fgsm:", "  bim:", 1))
    assert code_deps.main(["--check", "--root", str(dest)]) == 1  # an attack renamed: the file is out of date
