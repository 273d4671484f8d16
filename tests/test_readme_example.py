# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The README's library example, extracted from README.md and run as a program
on the tiny random Llama, the way a reader would run it: from a folder whose
`config.toml` and command line heretic would reject, which the example's
settings must ignore. `scripts/check_distribution.sh` runs the same block on
SmolLM2 from the installed wheel.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from development.readme_example import MODEL_VARIABLE, readme_example


def test_readme_has_one_python_block_in_the_library_section() -> None:
    code = readme_example()
    compile(code, "README.md", "exec")
    assert "TeacherForcedKLEngine" in code
    assert MODEL_VARIABLE in code


def test_extraction_fails_without_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n### 3. As a library in your own heretic fork\n\n"
        "```sh\nexit 1\n```\n\n## Next\n\n```python\nprint()\n```\n"
    )
    with pytest.raises(ValueError, match="exactly one ```python block, found 0"):
        readme_example(readme)


@pytest.mark.end_to_end
def test_readme_example_runs_and_measures(
    tmp_path: Path, tiny_llama_path: Path
) -> None:
    script = tmp_path / "readme_example.py"
    script.write_text(readme_example(), encoding="utf-8")
    # heretic's own settings would fail on each of these.
    (tmp_path / "config.toml").write_text('n_trials = "not a number"\n')
    environment = {
        **os.environ,
        MODEL_VARIABLE: str(tiny_llama_path),
        "HERETIC_BATCH_SIZE": "not a number",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, str(script), "--flag-heretic-does-not-know"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        env=environment,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    number = r"([-+\d.eE]+|nan|inf)"
    mean, per_position = re.search(
        rf"Teacher-forced KL: {number} \(per position: ([^)]*)\)", result.stdout
    ).groups()
    positions = [float(value) for value in per_position.split(" · ")]
    (first_token,) = re.search(
        rf"First-token KL \(heretic's measure\): {number}", result.stdout
    ).groups()
    (after_reset,) = re.search(rf"After reset_model: {number}", result.stdout).groups()

    # The abliteration changed the model, at every one of the 3 positions.
    assert len(positions) == 3
    assert float(mean) > 0
    assert all(value > 0 for value in positions)
    # The first position is heretic's first-token KL.
    assert float(first_token) == pytest.approx(positions[0], rel=1e-3)
    # The original model again: exactly 0.
    assert float(after_reset) == 0.0
