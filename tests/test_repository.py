"""The repository itself: no private key is ever committed (the original had its
CA's and servers' keys in git). Tests make their keys in temp directories."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Split, so that this file does not match itself.
PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9]+ )*" + rb"PRIVATE KEY-----")


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout
    return [REPO / name.decode() for name in listing.split(b"\0") if name]


def test_no_tracked_file_holds_a_private_key() -> None:
    offenders = []
    for path in _tracked_files():
        if path.is_file() and not path.is_symlink() and PRIVATE_KEY.search(path.read_bytes()):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], f"private keys committed: {offenders}"


def test_the_pattern_finds_the_keys_lrukv_certs_writes(tmp_path: Path) -> None:
    from lrukv_client.certs import init

    made = init(tmp_path / "pki")
    assert PRIVATE_KEY.search(made.ca.key.read_bytes())
    assert PRIVATE_KEY.search(made.server.key.read_bytes())
    assert not PRIVATE_KEY.search(made.server.cert.read_bytes())
