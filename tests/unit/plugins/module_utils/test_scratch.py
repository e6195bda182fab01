"""Scratch databases: only pgrollout_ names are ever created or dropped."""
from __future__ import annotations

import pytest
from ansible_collections.pgrollout.postgresql.plugins.module_utils import scratch


@pytest.mark.parametrize("action", [scratch.create_database, scratch.drop_database])
@pytest.mark.parametrize("name", ["postgres", "prod_db", "rehearsal_pgrollout_x"])
def test_a_name_without_the_prefix_is_refused_before_any_connection(action, name):
    # empty connection parameters: reaching connect() would fail differently
    with pytest.raises(scratch.ScratchError, match=f"scratch database '{name}' must be named pgrollout_"):
        action({}, name)
