# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The README's library example, extracted from README.md, and the check of
what it prints. CI runs the example once, in `scripts/check_distribution.sh`:
from the installed wheel, on SmolLM2, in a folder whose `config.toml`,
environment and command line heretic would reject; these tests check the
extraction and that the output check catches each way the output can be
wrong.
"""

from pathlib import Path

import pytest

from development.readme_example import (
    MODEL_VARIABLE,
    PRINTED_RELATIVE_TOLERANCE,
    check_output,
    readme_example,
)


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


#: What the example printed on SmolLM2 (scripts/check_distribution.sh).
GOOD_OUTPUT = """Teacher-forced KL: 0.01234 (per position: 0.02468 · 0.008 · 0.004)
First-token KL (heretic's measure): 0.02469
After reset_model: 0
"""


def test_the_example_output_check_accepts_a_right_run() -> None:
    assert check_output(GOOD_OUTPUT) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("After reset_model: 0", "After reset_model: 1e-07", "after reset_model"),
        ("0.02469", "0.02500", "is not the first position"),
        (" · 0.004", "", "2 positions printed"),
        ("0.008", "0", "left a KL of 0"),
        ("After reset_model: 0\n", "", "did not print"),
    ],
)
def test_the_example_output_check_names_each_problem(
    old: str, new: str, problem: str
) -> None:
    (found,) = check_output(GOOD_OUTPUT.replace(old, new))
    assert problem in found


def test_the_printed_tolerance_covers_rounding_to_four_digits() -> None:
    # The worst case of two values rounded to 4 significant digits: one just
    # below a rounding boundary, the other just above it.
    value = 1.0005
    first, second = float(f"{value - 1e-9:.4g}"), float(f"{value + 1e-9:.4g}")
    assert first != second
    assert abs(first - second) / second < PRINTED_RELATIVE_TOLERANCE
