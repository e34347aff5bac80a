import pytest

from flows.plan import STEPS, PlanError, make_plan, step_name


def test_complete_runs_all_steps_in_order():
    assert make_plan().run == STEPS


def test_single_step_by_number_or_name():
    assert make_plan("single", 3).run == ("sql_validation",)
    assert make_plan("single", "qa_generation").run == ("qa_generation",)


def test_options_switch_steps_off_and_say_so():
    plan = make_plan(skip_validation=True, skip_training_load=True)
    assert plan.run == ("ddl_generation", "qa_generation")
    assert plan.skipped == ("sql_validation", "training_load")


def test_from_step_resumes():
    assert make_plan(from_step="3").run == ("sql_validation", "training_load")


@pytest.mark.parametrize(
    "kwargs, message, option",
    [
        (dict(execution_mode="single"), "needs a single step", "single_step"),
        (dict(execution_mode="complete", single_step=2), "goes with execution mode 'single'", "single_step"),
        (dict(execution_mode="partial"), "must be 'complete' or 'single'", "execution_mode"),
        (dict(execution_mode="single", single_step=5), "use 1-4", "single_step"),
        (dict(execution_mode="single", single_step=1, from_step=2), "from_step goes with", "from_step"),
        (dict(from_step="loading"), "unknown step 'loading'", "from_step"),
    ],
)
def test_contradictions_are_errors_naming_the_option_to_change(kwargs, message, option):
    with pytest.raises(PlanError, match=message) as raised:
        make_plan(**kwargs)
    assert raised.value.option == option


def test_step_name_accepts_strings_of_digits():
    assert step_name(" 4 ") == "training_load"


def test_transient_failures_are_recognised_through_the_cause_chain():
    import psycopg2

    from dp.llm.client import LLMError
    from flows.schema_workflow import is_transient
    from steps.errors import StepFailed

    try:
        try:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        except psycopg2.OperationalError as exc:
            raise StepFailed("step ddl_generation failed") from exc
    except StepFailed as wrapped:
        assert is_transient(wrapped)
    assert is_transient(LLMError("HTTP 503", transient=True))
    assert not is_transient(LLMError("HTTP 400"))
    assert not is_transient(ValueError("bad table list"))
