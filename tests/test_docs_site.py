"""The documentation site builds with `mkdocs build --strict`, API pages included."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (site / "api" / "index.html").read_text()
    # The API reference is generated from the docstrings.
    assert "Measures the dead fraction of every ReLU-family layer" in api
    assert "kernel_initializer" in api or "SELUDense" in api
    tutorial = (site / "tutorial" / "index.html").read_text()
    assert "tensorboard_scalars.png" in tutorial
    assert (site / "assets" / "tensorboard_scalars.png").exists()
    dashboard = (site / "dashboard" / "index.html").read_text()
    for view in ("overview", "site_detail", "compare"):
        assert (
            f"dashboard_{view}.png" in dashboard and f"dashboard_{view}.png" in tutorial
        )
        assert (site / "assets" / f"dashboard_{view}.png").exists()
