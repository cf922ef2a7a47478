"""What the root refuses before anything starts: models windows or interims would use
without a price."""

from __future__ import annotations

import pytest

from gateway.budget.policy import load_policy
from gateway.errors import ConfigurationError
from gateway.runtime.root import check_interim_model_priced
from gateway.settings import DEV_POLICY_PATH, load_settings

POLICY = load_policy(DEV_POLICY_PATH)


def test_an_unpriced_interim_model_stops_the_start() -> None:
    settings = load_settings({"INTERIM_PROVIDER": "local", "INTERIM_MODEL": "base.en"})
    with pytest.raises(ConfigurationError, match=r"INTERIM_MODEL 'base\.en' has no price"):
        check_interim_model_priced(settings, POLICY)


def test_a_priced_interim_model_or_no_interims_starts() -> None:
    check_interim_model_priced(load_settings({"INTERIM_PROVIDER": "local"}), POLICY)
    off = load_settings({"INTERIM_PROVIDER": "off", "INTERIM_MODEL": "base.en"})
    check_interim_model_priced(off, POLICY)
