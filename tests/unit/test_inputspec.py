"""InputSpec: the checks a spec makes of itself and of the arrays a request brings."""

from __future__ import annotations

import numpy as np
import pytest

from pqcompress.errors import ConfigError
from pqcompress.inputspec import (
    InputSpec,
    as_specs,
    check_arrays,
    example_arrays,
    from_input_shape,
    random_arrays,
    single_float_shape,
)

IDS = InputSpec("input_ids", "int64", ("batch", "seq"), low=0, high=100)
MASK = InputSpec("attention_mask", "bool", ("batch", "seq"))


def test_round_trip_and_shorthand():
    assert InputSpec.from_dict(IDS.to_dict()) == IDS
    assert IDS.to_dict() == {
        "name": "input_ids",
        "dtype": "int64",
        "shape": ["batch", "seq"],
        "low": 0,
        "high": 100,
    }
    img = from_input_shape((3, 32, 32))
    assert img == InputSpec("input", "float32", ("batch", 3, 32, 32))
    assert single_float_shape([img]) == (3, 32, 32)
    assert single_float_shape([IDS]) is None and single_float_shape([img, img]) is None


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"name": "1x", "dtype": "int64", "shape": ("batch",)}, "input name"),
        ({"name": "x", "dtype": "int4", "shape": ("batch",)}, "dtype 'int4'"),
        ({"name": "x", "dtype": "int64", "shape": (4, "seq")}, "batch axis"),
        ({"name": "x", "dtype": "int64", "shape": ("batch", 0)}, "neither a size"),
        ({"name": "x", "dtype": "int64", "shape": "batch"}, "list of sizes"),
        ({"name": "x", "dtype": "int64", "shape": ()}, "1 to 8 dimensions"),
        ({"name": "x", "dtype": "int64", "shape": ("batch",), "low": 5, "high": 5}, "below high"),
    ],
)
def test_bad_specs_are_one_config_error(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        InputSpec(**kwargs)


def test_a_list_of_specs_is_checked_as_a_whole():
    assert as_specs([IDS.to_dict(), MASK]) == (IDS, MASK)
    with pytest.raises(ConfigError, match="more than once"):
        as_specs([IDS, IDS])
    with pytest.raises(ConfigError, match="disagree on the batch axis"):
        as_specs([IDS, InputSpec("m", "bool", ("n", "seq"))])
    with pytest.raises(ConfigError, match="batch axis 'batch' again"):
        as_specs([InputSpec("m", "bool", ("batch", "batch"))])
    with pytest.raises(ConfigError, match="unknown keys"):
        as_specs([{"name": "x", "shape": ["batch"], "dtyp": "int64"}])
    with pytest.raises(ConfigError, match="list of InputSpec"):
        as_specs(IDS)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="empty"):
        as_specs([])


def test_check_arrays_converts_and_names_each_problem():
    got = check_arrays(
        [IDS, MASK],
        {"input_ids": [[1, 2, 3]], "attention_mask": [[1, 1, 0]]},
        max_batch=4,
        max_dim=8,
    )
    assert got["input_ids"].dtype == np.int64 and got["attention_mask"].dtype == np.bool_
    assert got["attention_mask"].tolist() == [[True, True, False]]
    cases = [
        ({"input_ids": [[1, 2]]}, "missing ['attention_mask']"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, 1]], "z": [1]}, "unexpected ['z']"),
        ({"input_ids": [[1, 200]], "attention_mask": [[1, 1]]}, "values must be below 100"),
        ({"input_ids": [[-1, 2]], "attention_mask": [[1, 1]]}, "below its lowest value 0"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, 2]]}, "bool mask"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, 1, 1]]}, "axis 'seq' is 2"),
        ({"input_ids": [[1] * 9], "attention_mask": [[1] * 9]}, "expected 1 to 8"),
        ({"input_ids": [[1]] * 5, "attention_mask": [[1]] * 5}, "5 inputs in a request"),
        ({"input_ids": [[1, [2]]], "attention_mask": [[1, 1]]}, "rectangular"),
        ({"input_ids": [[1.5, 2]], "attention_mask": [[1, 1]]}, "whole numbers"),
        ({"input_ids": [[2**70, 2]], "attention_mask": [[1, 1]]}, "rectangular"),
    ]
    for arrays, words in cases:
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            check_arrays([IDS, MASK], arrays, max_batch=4, max_dim=8)
    fixed = InputSpec("x", "float32", ("batch", 3))
    with pytest.raises(ValueError, match="size 2 on axis 1; expected 3"):
        check_arrays([fixed], {"x": np.zeros((1, 2))}, max_batch=4, max_dim=8)
    with pytest.raises(ValueError, match="not finite"):
        check_arrays([fixed], {"x": np.array([[1, np.inf, 0]])}, max_batch=4, max_dim=8)


def test_example_and_random_arrays_satisfy_their_spec():
    specs = [IDS, MASK, InputSpec("pixels", "float16", ("batch", 2, "w"))]
    ex = example_arrays(specs, {"seq": 5, "w": 3}, batch=2)
    assert ex["input_ids"].shape == (2, 5) and (ex["input_ids"] == 1).all()
    assert ex["attention_mask"].all() and ex["pixels"].dtype == np.float16
    rnd = random_arrays(specs, np.random.default_rng(0), {"seq": 50}, batch=3)
    check_arrays(specs, rnd, max_batch=3, max_dim=50)  # raises if not
    assert rnd["input_ids"].max() < 100 and rnd["input_ids"].shape == (3, 50)
