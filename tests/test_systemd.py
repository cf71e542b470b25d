import os
import re
import shutil
import subprocess

import pytest
from helpers import ROOT

UNIT = ROOT / "systemd" / "rtgenre.service"


def analyze(*args: str) -> str:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but systemd-analyze is missing")
        pytest.skip("needs systemd-analyze")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60).stdout


def test_system_unit_exposure_is_at_most_2():
    out = analyze("security", "--offline=yes", str(UNIT))
    score = float(re.search(r"Overall exposure level for rtgenre.service: ([\d.]+)", out).group(1))
    assert score <= 2.0, out


def test_units_are_notify_services_that_restart_on_failure():
    for unit in ("rtgenre.service", "rtgenre-user.service"):
        text = (ROOT / "systemd" / unit).read_text()
        assert "Type=notify" in text and "Restart=on-failure" in text and "WatchdogSec=" in text
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text
