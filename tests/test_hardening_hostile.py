"""Issue 17 §4: bench/hostile_matrix.py as tests, one per case. Every file lbctl reads (state.json, the home, the
user config, the credentials, storage.db, stored, previous and cached packages, cache entries) made a FIFO, a link
to /dev/zero, a dangling link, 600 MiB, garbage or a directory, and malformed URLs, timeouts, CA bundles and a
marketplace that answers HTML: each is a one-line error with its exit code, never exit 10, a hang, a memory peak
over 200 MB or a secret printed (the script's docstring says exactly what is checked)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import hostile_matrix  # noqa: E402


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = hostile_matrix.Lab(tmp_path_factory.mktemp("hostile"))
    yield lab
    lab.close()


@pytest.mark.parametrize("name", list(hostile_matrix.CASES))
def test_a_hostile_file_or_input_is_a_one_line_error(lab, name):
    outcome = lab.run(hostile_matrix.CASES[name])

    assert outcome.problem is None, f"{outcome.problem}\n{outcome.proc.output if outcome.proc else ''}"


def test_the_matrix_covers_every_kind_of_every_file():
    hostile = {case.hostile for case in hostile_matrix.CASES.values() if case.hostile}
    files = set(hostile_matrix.COMMANDS_OF_FILE)
    assert {(f, k) for f in files for k in hostile_matrix.KINDS} - hostile == {("home", "directory")}
