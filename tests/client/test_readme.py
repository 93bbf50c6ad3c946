"""The README's first steps work as written: the library snippet runs from the
folder that holds the clone, named as the clone instructions name it (a clone
folder named ``lrukv`` would shadow the package there)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _library_snippet(text: str) -> str:
    after = text.split("In a program", 1)[1]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match, "the README lost its library snippet"
    return match.group(1)


def test_the_library_snippet_runs_beside_the_clone(tmp_path: Path) -> None:
    text = README.read_text()
    clone = re.search(r"^git clone \S+(?: \S+)*? (\S+) && cd \1$", text, re.MULTILINE)
    assert clone, "the README should say which folder the clone goes to"
    folder = clone.group(1)
    assert folder != "lrukv", "a clone named lrukv shadows the package beside it"
    (tmp_path / folder / "lrukv").mkdir(parents=True)  # what a clone holds
    snippet = _library_snippet(text) + "\nassert cache.get('user:42') == b'Ada'\n"
    result = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
