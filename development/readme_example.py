# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The README's library example (section "As a library in your own heretic
fork"), extracted from README.md so that tests and CI run exactly what the
README shows.

    python -m development.readme_example [--output PATH]

prints the example's code, or writes it to PATH. It uses the standard library
only, so that any Python can extract it, the fresh environment of
`scripts/check_distribution.sh` included. The example reads the model from
the environment variable `HERETIC_KL_EXAMPLE_MODEL`.
"""

import argparse
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

#: The title of the README section that holds the example.
SECTION_TITLE = "As a library in your own heretic fork"

#: The environment variable from which the example reads its model.
MODEL_VARIABLE = "HERETIC_KL_EXAMPLE_MODEL"

HEADING = re.compile(r"^(#+)\s")
FENCE = re.compile(r"^```")


def readme_example(readme: Path = README) -> str:
    """
    The code of the only fenced `python` block in the example's section.
    Raises `ValueError` when the section is missing or has no or several
    such blocks.
    """
    lines = readme.read_text(encoding="utf-8").splitlines()
    section_start = next(
        (
            index
            for index, line in enumerate(lines)
            if HEADING.match(line) and SECTION_TITLE in line
        ),
        None,
    )
    if section_start is None:
        raise ValueError(f"{readme}: no section titled {SECTION_TITLE!r}.")
    heading_match = HEADING.match(lines[section_start])
    assert heading_match is not None
    level = len(heading_match.group(1))

    blocks: list[list[str]] = []
    current: list[str] | None = None
    language = ""
    for line in lines[section_start + 1 :]:
        if current is None:
            heading = HEADING.match(line)
            if heading and len(heading.group(1)) <= level:
                break
            if FENCE.match(line):
                language = line[3:].strip()
                current = []
        elif FENCE.match(line):
            if language == "python":
                blocks.append(current)
            current = None
        else:
            current.append(line)
    if len(blocks) != 1:
        raise ValueError(
            f"{readme}: the section {SECTION_TITLE!r} must hold exactly one "
            f"```python block, found {len(blocks)}."
        )
    return "\n".join(blocks[0]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument(
        "--output", type=Path, help="write the code to this file instead"
    )
    arguments = parser.parse_args()
    code = readme_example()
    if arguments.output is None:
        print(code, end="")
    else:
        arguments.output.write_text(code, encoding="utf-8")


if __name__ == "__main__":
    main()
