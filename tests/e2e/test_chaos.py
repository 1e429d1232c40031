"""The 2-minute variant of ``make chaos``: writers under LLM failures, a Redis restart and
a SIGKILLed worker; 0 lost, 0 duplicated, 0 summarized twice, fast 503s, recovery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_nothing_is_lost_duplicated_or_summarized_twice_under_faults():
    result = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--seconds", "75", "--threads", "4", "--sessions", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    verdict = [line for line in result.stdout.splitlines() if line.startswith("CHAOS ")]
    assert verdict, result.stdout[-2000:] + result.stderr[-2000:]
    print(verdict[0])
    assert "verdict=PASS" in verdict[0], verdict[0]
    assert result.returncode == 0
