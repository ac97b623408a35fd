"""The README's Python example runs as written."""

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs():
    text = README.read_text()
    section = text[text.index("## From Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [str(i) for i in range(8)], done.stdout
    for line in lines:
        # Each job saw itself, and at most one other job, holding.
        holders = line.split("holders ")[1].strip("[]").split(", ")
        assert 1 <= len(holders) <= 2, line
