import os
import stat

import pytest

from fakelocator.files import atomic_path, atomic_write_bytes


def test_a_written_file_gets_the_mode_open_would_give_not_mkstemps_owner_only(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a" / "map.png", b"png")
    finally:
        os.umask(old)
    path = tmp_path / "a" / "map.png"
    assert path.read_bytes() == b"png"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
