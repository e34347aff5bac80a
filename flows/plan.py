"""Which steps a run executes, from its execution mode and options; pure so it tests without Prefect."""

from __future__ import annotations

from dataclasses import dataclass

STEPS = ("ddl_generation", "qa_generation", "sql_validation", "training_load")


class PlanError(ValueError):
    """Execution options that contradict each other; the message says which and what to use.

    ``option`` names the option to change (``execution_mode``, ``single_step`` or ``from_step``), so
    an API answer can point at the field the caller has to fix.
    """

    def __init__(self, message: str, option: str = "execution_mode"):
        super().__init__(message)
        self.option = option


def step_name(step: int | str, option: str = "single_step") -> str:
    """Accept 1-4, "1"-"4" or a step name; return the step name (``option``: where ``step`` came from)."""
    text = str(step).strip()
    if text.isdigit() and 1 <= int(text) <= len(STEPS):
        return STEPS[int(text) - 1]
    if text in STEPS:
        return text
    raise PlanError(f"unknown step {step!r}; use 1-4 or one of {', '.join(STEPS)}", option)


@dataclass(frozen=True)
class Plan:
    run: tuple[str, ...]  # steps to execute, in order
    skipped: tuple[str, ...]  # steps the options switched off


def make_plan(
    execution_mode: str = "complete",
    single_step: int | str | None = None,
    from_step: int | str | None = None,
    skip_validation: bool = False,
    skip_training_load: bool = False,
) -> Plan:
    if execution_mode not in ("complete", "single"):
        raise PlanError(f"execution mode must be 'complete' or 'single' (got {execution_mode!r})")
    if execution_mode == "single":
        if single_step in (None, ""):
            raise PlanError("execution mode 'single' needs a single step (1-4 or a step name)", "single_step")
        if from_step not in (None, ""):
            raise PlanError("from_step goes with execution mode 'complete', not 'single'", "from_step")
        return Plan(run=(step_name(single_step),), skipped=())
    if single_step not in (None, ""):
        raise PlanError(
            "a single step goes with execution mode 'single'; drop it or set execution mode to 'single'", "single_step"
        )
    start = STEPS.index(step_name(from_step, "from_step")) if from_step not in (None, "") else 0
    switched_off = {"sql_validation"} if skip_validation else set()
    if skip_training_load:
        switched_off.add("training_load")
    selected = STEPS[start:]
    return Plan(
        run=tuple(s for s in selected if s not in switched_off),
        skipped=tuple(s for s in selected if s in switched_off),
    )
