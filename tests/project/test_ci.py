"""What .ci/run installs before the suite: the system packages the tests need."""

from __future__ import annotations

from pathlib import Path

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_ci_installs_chromium_for_the_browser_tests_when_it_is_missing() -> None:
    script = CI_RUN.read_text()
    assert "if ! [ -x /usr/bin/chromium ]; then" in script
    assert "apt-get install -y -qq chromium" in script
    assert script.index("chromium") < script.index("make test")
