# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
The damage measure of a heretic-llm 1.4.0 study, saved with the study.

1.4.0 knows nothing of the scorer: a study continued with other flags would
measure its later trials differently, and one Pareto front would mix both
measures. heretic master keeps a study's scorer settings with its saved
settings; on 1.4.0 the launcher does the same. When the study begins, it
saves the measure (the scorer and the settings that define its numbers) as a
user attribute of the study in 1.4.0's Optuna journal storage, in
`study_checkpoint_dir`. When a run continues the study (heretic's "Continue
the previous run" or "Show the results from the previous run"), the saved
measure applies, and one line names every flag or config value that differs
and is ignored.

What defines the numbers is saved: the scorer, `prompts`, `kl_tokens` and
`position_weight_decay`. How they are computed, `batch_size` and
`reference_storage`, does not change them and follows the current run.

A local prompt file is saved by its path and by the SHA-256 of its content.
A study whose prompt file moved continues with the same prompts from another
path (`--kl-prompts NEW_PATH`, checked by content); with other prompts, or
none, it stops with one line that says what differs and how to continue. A
finished study needs no KL prompts to show its results and save models: its
KL measure starts only if more trials are run.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.markup import escape

from ...console import say
from ...errors import UsageError, describe_validation_error
from ...names import BUILT_IN_KL_NAME, TEACHER_FORCED_KL_NAME
from ...prompts import prompt_file_digest
from ...settings import MEASURE_FIELDS, TeacherForcedKLSettings
from .menus import CHECKPOINT_QUESTION

#: The study's user attribute that holds its measure.
STUDY_ATTRIBUTE = "heretic_teacher_forced_kl_measure"

#: The name of the 1.4.0 prompts that the scorer uses unless `prompts` is set.
EVALUATION_PROMPTS = "good_evaluation_prompts"

#: heretic 1.4.0 stores its own settings under this user attribute, at the start
#: of the study and whenever it runs additional trials.
HERETIC_SETTINGS_ATTRIBUTE = "settings"

#: heretic 1.4.0's user attribute that says whether the study ran all its trials.
FINISHED_ATTRIBUTE = "finished"

#: How many hexadecimal digits of a prompt file's SHA-256 a message shows.
SHORT_DIGEST = 12


@dataclass(frozen=True)
class Measure:
    """The damage measure of a study: the scorer and, for teacher-forced KL, its settings."""

    #: The scorer's `--scorer` name: teacher-forced-kl or kl-divergence.
    scorer: str

    #: The scorer settings, or None for heretic's own first-token KL.
    settings: TeacherForcedKLSettings | None = None

    #: Whether `prompts` was set; otherwise the scorer uses `good_evaluation_prompts`.
    prompts_set_explicitly: bool = False

    #: The SHA-256 of the explicit prompts' local file, as saved with the study
    #: (None: not saved, or not a local file). The path alone does not define
    #: the prompts, so measures compare without it.
    prompts_sha256: str | None = field(default=None, compare=False)

    #: Why this measure's prompts cannot be loaded (None: they can).
    prompts_problem: str | None = field(default=None, compare=False)

    def prompt_file(self) -> str | None:
        """The dataset of the explicit prompts, or None."""
        if self.settings is None or not self.prompts_set_explicitly:
            return None
        return self.settings.prompts.dataset

    def digest(self) -> str | None:
        """The SHA-256 of the explicit prompts' local file: saved, or read now."""
        dataset = self.prompt_file()
        if self.prompts_sha256 is not None or dataset is None:
            return self.prompts_sha256
        return prompt_file_digest(dataset)

    def record(self) -> dict[str, Any]:
        """The study attribute that saves this measure (JSON-serializable)."""
        return {
            "scorer": self.scorer,
            "settings": None
            if self.settings is None
            else self.settings.model_dump(mode="json"),
            "prompts_set_explicitly": self.prompts_set_explicitly,
            "prompts_sha256": self.digest(),
        }

    @classmethod
    def from_record(cls, record: Any) -> "Measure":
        """Reads a saved measure, with a one-line error for a record it cannot read."""
        problem = (
            f"the study in the checkpoint has an unreadable {STUDY_ATTRIBUTE} attribute"
        )
        fix = (
            "; delete the checkpoint file in study_checkpoint_dir to start the study "
            "afresh."
        )
        if not isinstance(record, dict) or record.get("scorer") not in (
            TEACHER_FORCED_KL_NAME,
            BUILT_IN_KL_NAME,
        ):
            raise UsageError(problem + fix)
        settings = None
        if record["scorer"] == TEACHER_FORCED_KL_NAME:
            try:
                settings = TeacherForcedKLSettings.model_validate(
                    record.get("settings") or {}
                )
            except ValidationError as error:
                raise UsageError(
                    describe_validation_error(error, f"{problem} (", ")" + fix)
                ) from None
        digest = record.get("prompts_sha256")
        return cls(
            scorer=record["scorer"],
            settings=settings,
            prompts_set_explicitly=bool(record.get("prompts_set_explicitly")),
            prompts_sha256=digest if isinstance(digest, str) else None,
        )

    def with_prompt_file(self, dataset: str) -> "Measure":
        """This measure, with its explicit prompts read from `dataset`."""
        assert self.settings is not None
        prompts = self.settings.prompts.model_copy(update={"dataset": dataset})
        return Measure(
            scorer=self.scorer,
            settings=self.settings.model_copy(update={"prompts": prompts}),
            prompts_set_explicitly=True,
            prompts_sha256=self.prompts_sha256,
        )

    def without_prompts(self, problem: str) -> "Measure":
        """This measure, marked as unable to load its prompts because of `problem`."""
        return Measure(
            scorer=self.scorer,
            settings=self.settings,
            prompts_set_explicitly=self.prompts_set_explicitly,
            prompts_sha256=self.prompts_sha256,
            prompts_problem=problem,
        )

    def values(self) -> dict[str, Any]:
        """The settings that define the numbers: the prompts' non-default fields, or their name."""
        if self.settings is None:
            return {}
        values: dict[str, Any] = {
            name: getattr(self.settings, name) for name in MEASURE_FIELDS
        }
        values["prompts"] = (
            self.settings.prompts.model_dump(mode="json", exclude_defaults=True)
            if self.prompts_set_explicitly
            else EVALUATION_PROMPTS
        )
        return values

    def describe(self) -> str:
        """The measure in words, such as "teacher-forced-kl, kl_tokens = 3, ..."."""
        if self.settings is None:
            return f"{self.scorer} (heretic's first-token KL)"
        settings = ", ".join(
            f"{name} = {value!r}" for name, value in self.values().items()
        )
        return f"{self.scorer}, {settings}"

    def with_runtime_settings_of(self, other: "Measure") -> "Measure":
        """This measure, computed with the batch size and reference storage of `other`."""
        if self.settings is None or other.settings is None:
            return self
        runtime = {
            name: getattr(other.settings, name)
            for name in TeacherForcedKLSettings.model_fields
            if name not in MEASURE_FIELDS
        }
        return Measure(
            scorer=self.scorer,
            settings=self.settings.model_copy(update=runtime),
            prompts_set_explicitly=self.prompts_set_explicitly,
            prompts_sha256=self.prompts_sha256,
            prompts_problem=self.prompts_problem,
        )


def located_prompts(saved: Measure, requested: Measure) -> Measure:
    """
    The saved measure with its prompt file found: at its saved path when the
    content there is the saved content, else at the path the current run gives
    (`--kl-prompts`) when that holds the saved content, saying so in one line.
    Otherwise the measure is marked with what differs and how to continue.
    """
    dataset = saved.prompt_file()
    if dataset is None or saved.prompts_sha256 is None:
        # Not a local file, or saved before prompt files were saved by content.
        return saved
    if prompt_file_digest(dataset) == saved.prompts_sha256:
        return saved
    short = saved.prompts_sha256[:SHORT_DIGEST]
    given = requested.prompt_file()
    if given is not None and given != dataset:
        if prompt_file_digest(given) == saved.prompts_sha256:
            say(
                f"The study's KL prompts {escape(dataset)} are now at "
                f"{escape(given)} (the same content, SHA-256 {short}...); "
                "continuing with them."
            )
            return saved.with_prompt_file(given)
        other = f"; {given} holds other prompts" if prompt_file_digest(given) else ""
    else:
        other = ""
    state = "changed since" if Path(dataset).is_file() else "missing"
    return saved.without_prompts(
        f"the KL prompts of the study in the checkpoint, {dataset}, are {state} "
        f"(SHA-256 {short}... when the study began){other}. To continue the "
        "study, pass --kl-prompts with the path of the same prompts; to start "
        "afresh, delete the checkpoint file in study_checkpoint_dir"
    )


def ignored_values(
    saved: Measure, requested: Measure, sources: dict[str, str]
) -> list[str]:
    """
    What the current run asks for that differs from the saved measure, each as
    "name = value (where it was given)". `sources` maps "scorer" and the setting
    names to where the current run's value came from (a flag or `config.toml`);
    a name without a source has its default.
    """

    def entry(name: str, value: Any) -> str:
        return f"{name} = {value!r} ({sources.get(name, 'the default')})"

    if saved.scorer != requested.scorer:
        ignored = [entry("scorer", requested.scorer)]
        ignored += [
            entry(name, value)
            for name, value in requested.values().items()
            if name in sources
        ]
        return ignored
    saved_values = saved.values()
    return [
        entry(name, value)
        for name, value in requested.values().items()
        if value != saved_values.get(name)
    ]


@dataclass
class StudyMeasure:
    """
    The measure of one launcher run: the one the flags and `config.toml` ask
    for, and the one saved with a study that the run continues.
    """

    #: The measure the current run's flags and `config.toml` ask for.
    requested: Measure

    #: Where each requested value came from (see `ignored_values`).
    sources: dict[str, str] = field(default_factory=dict)

    #: The measure saved with the study in the checkpoint, if any.
    saved_record: Any = None

    #: Whether a study was found in the checkpoint.
    found_study: bool = False

    #: Whether the study found had run all its trials.
    found_finished: bool = False

    #: The measure this run uses, once decided.
    effective: Measure | None = None

    #: Whether this run continues the study found in the checkpoint.
    continuing: bool = False

    def observe_studies(self, studies: Sequence[Any]) -> None:
        """Notes the study of the checkpoint, the first time heretic looks for it."""
        if self.found_study or self.effective is not None or not studies:
            return
        self.found_study = True
        self.saved_record = studies[0].user_attrs.get(STUDY_ATTRIBUTE)
        self.found_finished = bool(studies[0].user_attrs.get(FINISHED_ATTRIBUTE))

    @property
    def continues_finished_study(self) -> bool:
        """Whether this run continues a finished study (to show it and save models)."""
        return self.continuing and self.found_finished

    def observe_checkpoint_answer(self, answer: Any) -> None:
        """Decides the measure as soon as the run chooses to continue the study found."""
        if answer == "continue":
            self.decide(continuing=True)

    def decide(self, continuing: bool = False) -> Measure:
        """The measure of this run (decided once): the saved one when continuing a study."""
        if self.effective is not None:
            return self.effective
        self.continuing = continuing
        if not continuing:
            self.effective = self.requested
        elif self.saved_record is None:
            say(
                "[yellow]The study in the checkpoint has no saved damage measure (it was "
                "begun by plain heretic or an earlier heretic-kl), so its earlier trials "
                f"may have been measured differently; it continues with "
                f"{self.requested.describe()}, saved with it from now on.[/]"
            )
            self.effective = self.requested
        else:
            saved = located_prompts(
                Measure.from_record(self.saved_record), self.requested
            )
            if saved.prompts_problem is not None and not self.found_finished:
                # The study has trials to run, which need the prompts.
                raise UsageError(saved.prompts_problem + ".")
            ignored = ignored_values(saved, self.requested, self.sources)
            if ignored:
                say(
                    "[yellow]Continuing the study with the damage measure saved when it "
                    f"began ({saved.describe()}); ignoring what differs: "
                    f"{', '.join(ignored)}.[/]"
                )
            self.effective = saved.with_runtime_settings_of(self.requested)
        return self.effective


def recording_storage(base: type, study: StudyMeasure) -> type:
    """
    Returns a subclass of Optuna's `JournalStorage` (`base`, as 1.4.0's
    `heretic.main` imports it) that tells `study` about the study in the
    checkpoint and saves the measure with the study as soon as heretic saves its
    own settings there (when the study begins, and with a study that has none yet).
    """

    class MeasureRecordingStorage(base):  # type: ignore[valid-type, misc]
        """1.4.0's study storage, which also saves the study's damage measure."""

        def get_all_studies(self) -> list[Any]:
            studies = super().get_all_studies()
            study.observe_studies(studies)
            return studies

        def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
            super().set_study_user_attr(study_id, key, value)
            if (
                key == HERETIC_SETTINGS_ATTRIBUTE
                and study.effective is not None
                and STUDY_ATTRIBUTE not in self.get_study_user_attrs(study_id)
            ):
                super().set_study_user_attr(
                    study_id, STUDY_ATTRIBUTE, study.effective.record()
                )

    return MeasureRecordingStorage


def observing_checkpoint_answer(
    select: Callable[..., Any], study: StudyMeasure
) -> Callable[..., Any]:
    """Wraps 1.4.0's `prompt_select` so that `study` learns whether the run continues a study."""

    def select_and_observe(
        message: str, choices: Any, *rest: Any, **options: Any
    ) -> Any:
        answer = select(message, choices, *rest, **options)
        if message.startswith(CHECKPOINT_QUESTION):
            study.observe_checkpoint_answer(answer)
        return answer

    return select_and_observe
