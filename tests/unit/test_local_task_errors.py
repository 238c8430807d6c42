"""What a user is told when a local task runner fails: a refusal (``InputValidationError``)
reaches them as the runner wrote it; anything else escaping a runner is a bug or a model it
cannot handle, logged with its traceback and reported as a ``GenerationError`` — never as
"refused this input". No model is loaded: the runner is a stand-in in ``RUNNERS``."""

from __future__ import annotations

import logging

import pytest

from backends.errors import GenerationError, InputValidationError
from backends.local.tasks import RUNNERS, LocalTasks, Runner, local_tasks

LOGGER = local_tasks.__name__


@pytest.fixture
def run_with(monkeypatch, tmp_path):
    """``run_with(fn)``: text classification on a stand-in runner whose run is ``fn``."""
    monkeypatch.setattr(local_tasks, "select_device", lambda preference: ("cpu", None))

    def run(fn):
        runner = Runner("stand-in", lambda location, device: "loaded", fn)
        monkeypatch.setitem(RUNNERS, "text_classification", runner)
        local = LocalTasks(device="cpu")
        return local.run("text_classification", {"text": "hi"}, {}, model=str(tmp_path))

    return run


@pytest.mark.parametrize(
    "bug",
    [KeyError("label"), IndexError("list index out of range"), ValueError("bad"), RuntimeError()],
)
def test_an_internal_bug_is_a_logged_generation_error(run_with, caplog, tmp_path, bug):
    def broken(loaded, inputs, params):
        assert loaded == "loaded" and inputs == {"text": "hi"}
        raise bug

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        with pytest.raises(GenerationError) as caught:
            run_with(broken)
    error = caught.value
    assert not isinstance(error, InputValidationError)
    assert error.__cause__ is bug
    what = f"{type(bug).__name__}: {bug}" if str(bug) else type(bug).__name__
    assert error.message == f"{tmp_path} failed on text classification: {what}"
    assert "refused" not in error.user_message()
    assert "server log" in error.user_message()
    logged = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info and logged[0].exc_info[1] is bug  # log.exception: traceback


def test_a_key_error_names_the_missing_key(run_with):
    def broken(loaded, inputs, params):
        return {}["box"]

    with pytest.raises(GenerationError, match=r"KeyError: 'box'"):
        run_with(broken)


def test_a_refusal_keeps_its_message_and_field_and_is_not_logged(run_with, caplog):
    refusal = InputValidationError(
        "The text has no [MASK]: this model's mask token.", field="text", hint="Write [MASK]."
    )

    def refuse(loaded, inputs, params):
        raise refusal

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        with pytest.raises(InputValidationError) as caught:
            run_with(refuse)
    assert caught.value is refusal
    assert caught.value.message == "The text has no [MASK]: this model's mask token."
    assert caught.value.field == "text"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_model_name_too_long_for_a_path_is_refused_clearly(monkeypatch):
    # Path.is_dir() raised "[Errno 36] File name too long: 'xxxx…'" (1 MB echoed back).
    monkeypatch.setattr(local_tasks, "select_device", lambda preference: ("cpu", None))
    local = LocalTasks(device="cpu")
    with pytest.raises(InputValidationError) as caught:
        local.run("text_classification", {"text": "hi"}, {}, model="x" * 100_000)
    assert caught.value.field == "model"
    assert caught.value.message == f"'{'x' * 60}…' is neither a model directory nor a valid Hub id."
