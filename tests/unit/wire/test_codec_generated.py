"""The committed codec modules are exactly what tools/gen.py writes from protocol/ today.

Editing a schema (or the generator) without running `make gen` leaves kbroker/wire/messages/ stale;
this test is the reminder.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_generated_modules_are_up_to_date():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen.py"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, (
        "generated codec modules are stale; run `make gen` (or .venv/bin/python tools/gen.py) "
        f"and commit the result:\n{proc.stdout}{proc.stderr}"
    )


def test_check_notices_a_stale_module(tmp_path):
    # The same check on a copy of the tree with one generated module edited by hand must fail:
    # otherwise the test above proves nothing.
    import shutil

    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    shutil.copytree(ROOT / "protocol", tmp_path / "protocol")
    shutil.copytree(ROOT / "kbroker" / "wire", tmp_path / "kbroker" / "wire",
                    ignore=shutil.ignore_patterns("__pycache__"))
    gen = [sys.executable, str(tmp_path / "tools" / "gen.py"), "--check"]
    assert subprocess.run(gen, cwd=tmp_path, capture_output=True, timeout=120).returncode == 0
    victim = tmp_path / "kbroker" / "wire" / "messages" / "heartbeat.py"
    victim.write_text(victim.read_text() + "# edited by hand\n")
    proc = subprocess.run(gen, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "heartbeat.py" in proc.stdout
