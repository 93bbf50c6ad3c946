"""The policy file: what loads, what is refused with one clear line, and the token
helpers an operator uses to fill it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lrukv_client import HttpClient, PermissionDenied
from lrukv_server.config import ConfigError, load_config
from lrukv_server.security.__main__ import main as security_main
from lrukv_server.security.policy import PolicyError, Role, hash_token, load_policy
from tests.conftest import StartServer
from tests.harness import REPO_ROOT, server_command
from tests.security.policies import Tokens, write_policy


def test_a_policy_gives_each_subject_its_role_and_maps_tokens_to_subjects(tmp_path: Path) -> None:
    tokens = Tokens.fresh()
    policy = load_policy(write_policy(tmp_path / "policy.toml", tokens))
    assert policy.role_of("app-reader") is Role.READER
    assert policy.role_of("ops") is Role.ADMIN
    assert policy.role_of("reader.lrukv.test") is Role.READER
    assert policy.role_of("nobody") is None
    assert policy.subject_for_token(tokens.writer) == "app-writer"
    assert policy.subject_for_token(tokens.admin) == "ops"
    assert policy.subject_for_token(tokens.unknown) is None
    assert policy.subject_for_token("") is None


def test_the_file_holds_no_token_only_its_hash(tmp_path: Path) -> None:
    tokens = Tokens.fresh()
    text = write_policy(tmp_path / "policy.toml", tokens).read_text()
    assert tokens.admin not in text
    assert hashlib.sha256(tokens.admin.encode()).hexdigest() in text


def test_roles_are_ordered() -> None:
    assert Role.READER < Role.WRITER < Role.ADMIN


BAD_POLICIES = [
    ("subjects = [", "is not valid TOML"),
    ('[[subjects]]\nname = "a"\nrole = "root"\n', "unknown role 'root'; use reader, writer, admin"),
    (
        '[[subjects]]\nname = "a"\nrole = "reader"\n[[subjects]]\nname = "a"\nrole = "admin"\n',
        "duplicate subject 'a'",
    ),
    ('[[subjects]]\nname = "a"\nrole = "reader"\ntoken_sha256 = ["hunter2"]\n', "64 hex digits"),
    (
        '[[subjects]]\nname = "a"\nrole = "reader"\ntoken_sha256 = ["' + "ab" * 32 + '"]\n'
        '[[subjects]]\nname = "b"\nrole = "admin"\ntoken_sha256 = ["' + "AB" * 32 + '"]\n',
        "is already given to 'a'",
    ),
    ('[[subjects]]\nname = "a"\nrole = "reader"\ngroups = []\n', "unknown key 'groups'"),
    ('[[subjects]]\nname = ""\nrole = "reader"\n', "name must be a non-empty string"),
    ('[[subjects]]\nname = "a"\n', "role must be one of reader, writer, admin"),
    ('[roles]\na = "reader"\n', "unknown key 'roles'"),
]


@pytest.mark.parametrize(("text", "message"), BAD_POLICIES, ids=[m for _, m in BAD_POLICIES])
def test_a_bad_policy_is_refused_with_one_line_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the authorization policy"):
        load_policy(tmp_path / "absent.toml")


def test_the_flag_the_environment_and_the_config_file_all_set_the_policy(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.toml", Tokens.fresh())
    assert load_config(["--auth-policy", str(policy)], env={}).auth.policy == str(policy)
    assert load_config([], env={"LRUKV_AUTH_POLICY": str(policy)}).auth.policy == str(policy)
    config_file = tmp_path / "lrukv.toml"
    config_file.write_text(f'[auth]\npolicy = "{policy}"\n')
    assert load_config(["--config", str(config_file)], env={}).auth.enabled
    assert not load_config([], env={}).auth.enabled


def test_load_config_validates_the_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[subjects]]\nname = "a"\nrole = "superuser"\n')
    with pytest.raises(ConfigError, match="unknown role 'superuser'"):
        load_config(["--auth-policy", str(bad)], env={})


def test_the_server_refuses_a_bad_policy_at_start_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[subjects]]\nname = "a"\nrole = "reader"\n[[subjects]]\nname = "a"\nrole = "reader"\n'
    )
    result = subprocess.run(
        [*server_command(), "--http-port", "0", "--grpc-port", "0", "--auth-policy", str(bad)],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert lines == [f"lrukv-server: error: {bad}: subjects[1]: duplicate subject 'a' "
                     "(each subject has one entry and one role)"]  # fmt: skip


def test_new_token_prints_a_token_and_an_entry_that_authenticates_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert security_main(["new-token", "ci-bot", "writer"]) == 0
    out = capsys.readouterr().out
    token = out.splitlines()[0].rsplit(" ", 1)[1]
    entry = out.split("policy entry:\n", 1)[1]
    path = tmp_path / "policy.toml"
    path.write_text(entry)
    policy = load_policy(path)
    assert policy.subject_for_token(token) == "ci-bot"
    assert policy.role_of("ci-bot") is Role.WRITER
    assert token not in entry


def test_hash_token_reads_stdin_like_sha256sum(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lrukv_server.security", "hash-token"],
        input=b"s3cret-token\n",
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.decode().strip() == hash_token("s3cret-token")
    assert hash_token("s3cret-token") == hashlib.sha256(b"s3cret-token").hexdigest()


def test_check_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[subjects]]\n")
    assert security_main(["check", str(bad)]) == 2
    assert "name must be a non-empty string" in capsys.readouterr().err


def test_a_restarted_worker_keeps_the_policy_read_at_start(
    lrukv_server_factory: StartServer, tmp_path: Path
) -> None:
    # The file is read once, by the master: an edit (here, a broken one) cannot
    # stop a worker that replaces a dead one, and changes nothing until a restart.
    tokens = Tokens.fresh()
    policy = write_policy(tmp_path / "policy.toml", tokens)
    server = lrukv_server_factory("--auth-policy", str(policy))
    policy.write_text("this is not TOML [")
    os.kill(server.worker_pid, signal.SIGKILL)
    server.wait_for_new_worker()
    # Over HTTP: the master holds that socket (a new worker picks a new gRPC port).
    with HttpClient(server.http_url, token=tokens.writer) as writer:
        writer.put("after-restart", b"v")
    with HttpClient(server.http_url, token=tokens.reader) as reader:
        assert reader.get("after-restart") == b"v"
        with pytest.raises(PermissionDenied):
            reader.put("after-restart", b"changed")
