"""Start-up: `import lightact` and every help, listing and version command load only what they use.

Each check runs in a fresh interpreter (this test process has long imported torch) and lists which
heavy libraries the command left in ``sys.modules``. How long start-up takes is measured by
benchmarks/startup.py, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "timm", "torchvision", "matplotlib", "numpy")

_PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
if argv is None:
    import lightact
else:
    sys.argv = ["lightact", *argv]
    from lightact.cli import main
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr)
"""


def heavy_modules_after(argv: list[str] | None) -> list[str]:
    """The heavy libraries loaded by ``lightact ARGV`` (``None``: by ``import lightact``)."""
    code = _PROBE.format(heavy=repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, timeout=120
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        None,
        ["--help"],
        ["-h"],
        ["--version"],
        ["train", "-h"],
        ["eval", "--help"],
        ["configs"],
        ["bench", "-h"],
        ["serve", "-h"],
    ],
    ids=lambda a: "import lightact" if a is None else " ".join(a),
)
def test_loads_no_heavy_library(argv):
    assert heavy_modules_after(argv) == []


def test_models_lists_without_lightning():
    loaded = heavy_modules_after(["models"])
    assert "lightning" not in loaded and "timm" not in loaded and "torchvision" not in loaded


def test_public_names_load_on_first_use():
    import lightact

    assert set(lightact.__all__) <= set(dir(lightact))
    assert lightact.Recognizer.__name__ == "Recognizer" and callable(lightact.create_model)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        lightact.nothing  # noqa: B018
