# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The README's library example (section "As a library in your own heretic
fork"), extracted from README.md so that tests and CI run exactly what the
README shows.

    python -m development.readme_example [--output PATH]
    python -m development.readme_example --check OUTPUT

prints the example's code, or writes it to PATH; with `--check`, checks what
the example printed (saved in OUTPUT) and exits with status 1 and one line
per problem when it is wrong. `scripts/check_distribution.sh` runs the
example once, from the installed wheel, and checks it so. It uses the standard library
only, so that any Python can extract it, the fresh environment of
`scripts/check_distribution.sh` included. The example reads the model from
the environment variable `HERETIC_KL_EXAMPLE_MODEL`.
"""

import argparse
import math
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

#: The title of the README section that holds the example.
SECTION_TITLE = "As a library in your own heretic fork"

#: The environment variable from which the example reads its model.
MODEL_VARIABLE = "HERETIC_KL_EXAMPLE_MODEL"

HEADING = re.compile(r"^(#+)\s")
FENCE = re.compile(r"^```")

#: A number as the example prints it (`:.4g`).
NUMBER = r"([-+\d.eE]+|nan|inf)"

#: How far two of the example's printed numbers may differ and still be the same
#: value: each is rounded to 4 significant digits, at most half a unit of the
#: fourth digit, so at most 5e-4 of its value; two of them, 1e-3; the float32
#: arithmetic behind them adds about 1e-6. Twice the sum leaves room for a
#: value rounded across a power of ten.
PRINTED_RELATIVE_TOLERANCE = 2e-3


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


def check_output(text: str, kl_tokens: int = 3) -> list[str]:
    """
    The problems with what the example printed, none when it is right: the
    abliteration changed the model at each of the `kl_tokens` positions, the
    first position is heretic's first-token KL, and the original model, after
    `reset_model`, scores exactly 0.
    """
    teacher_forced = re.search(
        rf"Teacher-forced KL: {NUMBER} \(per position: ([^)]*)\)", text
    )
    first_token = re.search(rf"First-token KL \(heretic's measure\): {NUMBER}", text)
    after_reset = re.search(rf"After reset_model: {NUMBER}", text)
    if teacher_forced is None or first_token is None or after_reset is None:
        return ["the example did not print its three results"]
    problems = []
    mean = float(teacher_forced.group(1))
    positions = [float(value) for value in teacher_forced.group(2).split(" · ")]
    if len(positions) != kl_tokens:
        problems.append(f"{len(positions)} positions printed, expected {kl_tokens}")
    if not (mean > 0 and all(value > 0 for value in positions)):
        problems.append(f"the abliteration left a KL of 0: {mean}, {positions}")
    if not math.isclose(
        float(first_token.group(1)),
        positions[0],
        rel_tol=PRINTED_RELATIVE_TOLERANCE,
    ):
        problems.append(
            f"first-token KL {first_token.group(1)} is not the first position "
            f"{positions[0]}"
        )
    if float(after_reset.group(1)) != 0.0:
        problems.append(f"after reset_model the KL is {after_reset.group(1)}, not 0")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument(
        "--output", type=Path, help="write the code to this file instead"
    )
    parser.add_argument(
        "--check",
        type=Path,
        metavar="OUTPUT",
        help="check what the example printed, saved in this file",
    )
    arguments = parser.parse_args()
    if arguments.check is not None:
        problems = check_output(arguments.check.read_text(encoding="utf-8"))
        for problem in problems:
            print(f"README example: {problem}", file=sys.stderr)
        raise SystemExit(1 if problems else 0)
    code = readme_example()
    if arguments.output is None:
        print(code, end="")
    else:
        arguments.output.write_text(code, encoding="utf-8")


if __name__ == "__main__":
    main()
