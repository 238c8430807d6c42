"""The task registry (backends/tasks.py): every declaration matches InferenceClient's own
method (name, inputs, keyword names, the Hub task id it sends), and ``validate_parameters``
enforces the declared bounds and choices before anything leaves the process."""

from __future__ import annotations

import inspect
import math

import pytest
from huggingface_hub import InferenceClient

from backends.errors import InputValidationError
from backends.tasks import GROUPS, TASKS, get_task, tasks_in, validate_parameters


def method(name: str):
    return getattr(InferenceClient, name)


# -- the registry against InferenceClient ------------------------------------------------


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_an_inference_client_method(name):
    spec = TASKS[name]
    assert spec.name == name
    assert callable(getattr(InferenceClient, name, None)), f"InferenceClient has no {name}()"


@pytest.mark.parametrize("name", list(TASKS))
def test_inputs_and_params_are_keywords_of_the_method(name):
    spec = TASKS[name]
    signature = inspect.signature(method(name)).parameters
    for declared in (*spec.inputs, *spec.params):
        assert declared.name in signature, f"InferenceClient.{name}() has no {declared.name!r}"
        assert signature[declared.name].kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )


@pytest.mark.parametrize("name", list(TASKS))
def test_inputs_cover_every_required_argument(name):
    # run_task calls InferenceClient.<name>(**inputs, **parameters): a required argument
    # missing from the inputs would be a TypeError at the first click.
    required = {
        p.name
        for p in inspect.signature(method(name)).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and p.name != "self"
    }
    assert required <= {i.name for i in TASKS[name].inputs}


@pytest.mark.parametrize("name", list(TASKS))
def test_the_hub_task_is_the_one_the_method_sends(name):
    # The provider check (RemoteBackend._check_task) looks the hub task up in
    # huggingface_hub's provider registry: it must be the id the method itself uses.
    source = inspect.getsource(method(name))
    assert f'task="{TASKS[name].hub_task}"' in source


@pytest.mark.parametrize("name", list(TASKS))
def test_declarations_are_consistent(name):
    spec = TASKS[name]
    names = [i.name for i in spec.inputs] + [p.name for p in spec.params]
    assert len(names) == len(set(names)), "an input and a parameter share a name"
    assert spec.inputs, "a task needs at least one input"
    for param in spec.params:
        if param.kind == "choice":
            assert len(param.choices) >= 2
        else:
            assert not param.choices
        if param.minimum is not None and param.maximum is not None:
            assert param.minimum < param.maximum
        if param.kind not in ("int", "float"):
            assert param.minimum is None and param.maximum is None
        if param.default is not None:
            validate_parameters(name, {param.name: param.default})  # the default is valid


# -- groups ---------------------------------------------------------------------------------


def test_every_task_is_in_exactly_one_tab_in_declaration_order():
    listed = [spec.name for group in GROUPS for spec in tasks_in(group)]
    assert sorted(listed) == sorted(TASKS)
    assert len(listed) == len(set(listed))
    for group in GROUPS:
        names = [spec.name for spec in tasks_in(group)]
        assert names, f"the {group} tab is empty"
        assert names == [n for n in TASKS if n in names]  # declaration order
        assert all(spec.group == group for spec in tasks_in(group))


def test_tasks_in_a_group():
    assert [s.name for s in tasks_in("tables")] == [
        "table_question_answering",
        "tabular_classification",
        "tabular_regression",
    ]
    assert tasks_in("video") == []  # type: ignore[arg-type]


def test_get_task():
    assert get_task("translation") is TASKS["translation"]
    with pytest.raises(InputValidationError, match="Unknown task 'translate'") as info:
        get_task("translate")
    assert "translation" in info.value.hint  # the known tasks are listed


def test_hub_task_ids():
    assert get_task("image_classification").hub_task == "image-classification"
    # The one task whose Hub id is not its method name with dashes.
    assert get_task("text_to_speech").hub_task == "text-to-speech"


# -- validate_parameters --------------------------------------------------------------------


def _bounded() -> list[tuple[str, str, float, float, str]]:
    return [
        (name, p.name, p.minimum, p.maximum, p.kind)
        for name, spec in TASKS.items()
        for p in spec.params
        if p.minimum is not None and p.maximum is not None
    ]


@pytest.mark.parametrize(("name", "param", "low", "high", "kind"), _bounded())
def test_bounds_are_inclusive_and_enforced(name, param, low, high, kind):
    cast = int if kind == "int" else float
    assert validate_parameters(name, {param: cast(low)}) == {param: cast(low)}
    assert validate_parameters(name, {param: cast(high)}) == {param: cast(high)}
    step = 1 if kind == "int" else 0.5
    for value, limit in ((cast(high + step), f"<= {high}"), (cast(low - step), f">= {low}")):
        with pytest.raises(InputValidationError) as info:
            validate_parameters(name, {param: value})
        assert f"`{param}` must be {limit} (got {value!r})" in info.value.message
        assert info.value.field == param


def test_the_message_names_the_limit():
    with pytest.raises(InputValidationError) as info:
        validate_parameters("image_classification", {"top_k": 101})
    assert info.value.message == "`top_k` must be <= 100 (got 101)"
    assert info.value.user_message() == "`top_k` must be <= 100 (got 101)"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value):
    with pytest.raises(InputValidationError, match="`guidance_scale`"):
        validate_parameters("text_to_image", {"guidance_scale": value})


def test_choices():
    assert validate_parameters("image_segmentation", {"subtask": "panoptic"}) == {
        "subtask": "panoptic"
    }
    with pytest.raises(InputValidationError) as info:
        validate_parameters("image_segmentation", {"subtask": "amodal"})
    assert "'semantic', 'instance' or 'panoptic'" in info.value.message
    assert info.value.field == "subtask"


def test_unknown_keys_are_refused():
    with pytest.raises(InputValidationError, match="`max_length` is not a known parameter"):
        validate_parameters("summarization", {"max_length": 30})
    # A parameter of another task is unknown here too.
    with pytest.raises(InputValidationError, match="`threshold`"):
        validate_parameters("image_classification", {"threshold": 0.5})


def test_every_offending_field_is_named():
    with pytest.raises(InputValidationError) as info:
        validate_parameters("image_classification", {"top_k": 0, "function_to_apply": "max"})
    assert "`top_k`" in info.value.message and "`function_to_apply`" in info.value.message


def test_empty_values_are_dropped_but_zero_and_false_are_kept():
    given = {
        "negative_prompt": "",
        "num_inference_steps": None,
        "seed": 0,
        "guidance_scale": 0.0,
    }
    assert validate_parameters("text_to_image", given) == {"seed": 0, "guidance_scale": 0.0}
    assert validate_parameters("zero_shot_classification", {"multi_label": False}) == {
        "multi_label": False
    }
    assert validate_parameters("fill_mask", {"targets": []}) == {}
    # An empty value is dropped before the unknown-key check: a blank widget never fails.
    assert validate_parameters("summarization", {"unknown": None}) == {}


def test_values_are_converted_to_the_declared_type():
    # Gradio number widgets can hand over 3.0 for an int, or a string.
    assert validate_parameters("image_classification", {"top_k": 3.0}) == {"top_k": 3}
    assert validate_parameters("image_classification", {"top_k": "3"}) == {"top_k": 3}
    assert validate_parameters("object_detection", {"threshold": 1}) == {"threshold": 1.0}
    with pytest.raises(InputValidationError, match="`top_k`"):
        validate_parameters("image_classification", {"top_k": 2.5})


def test_label_lists():
    assert validate_parameters("token_classification", {"ignore_labels": ["O", "MISC"]}) == {
        "ignore_labels": ["O", "MISC"]
    }
    with pytest.raises(InputValidationError, match="`targets`.*valid list"):
        validate_parameters("fill_mask", {"targets": "capital"})


def test_unknown_task():
    with pytest.raises(InputValidationError, match="Unknown task"):
        validate_parameters("image_captioning", {})


def test_check_inputs_names_the_missing_input() -> None:
    from backends.errors import InputValidationError
    from backends.tasks import check_inputs

    with pytest.raises(InputValidationError) as missing:
        check_inputs("table_question_answering", {"table": {"a": ["1"]}, "query": "  "})
    assert missing.value.field == "query"
    assert "question" in missing.value.user_message().lower()
    with pytest.raises(InputValidationError) as extra:
        check_inputs("fill_mask", {"text": "a [MASK]", "image": b"x"})
    assert extra.value.field == "image"
    # An optional input may be left out.
    assert check_inputs("image_to_image", {"image": b"png", "prompt": ""}) == {"image": b"png"}
