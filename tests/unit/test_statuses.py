"""HTTP statuses come from the type of the error that refused a request, in one module."""

from __future__ import annotations

import pickle

import pytest

from tandem import errors
from tandem.errors import (
    MalformedRequest,
    ModelFailed,
    NotServed,
    Rejected,
    TooLarge,
    Unauthenticated,
    UnusableOutputs,
)
from tandem.serve.statuses import REJECTIONS, is_server_error, status_of


def test_every_reason_to_refuse_has_its_status() -> None:
    reasons = {
        kind
        for kind in vars(errors).values()
        if isinstance(kind, type) and issubclass(kind, Rejected) and kind is not Rejected
    }
    assert set(REJECTIONS) == reasons
    assert {kind: status_of(kind("x")) for kind in reasons} == {
        MalformedRequest: 400,
        Unauthenticated: 401,
        NotServed: 404,
        TooLarge: 413,
        UnusableOutputs: 422,
        ModelFailed: 500,
    }
    assert [k for k in reasons if is_server_error(status_of(k("x")))] == [ModelFailed]


def test_a_subclass_gets_its_base_s_status_and_the_base_has_none() -> None:
    class BadShape(MalformedRequest):
        pass

    assert status_of(BadShape("x")) == 400
    with pytest.raises(AssertionError, match="no HTTP status"):
        status_of(Rejected("x"))


def test_refusals_pickle_with_their_type_and_message() -> None:
    error = pickle.loads(pickle.dumps(NotServed("version '9' is not served here")))
    assert type(error) is NotServed and error.message == "version '9' is not served here"
    assert str(error) == error.message and status_of(error) == 404
