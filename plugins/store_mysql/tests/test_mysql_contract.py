"""The MySQL store against the store contract every store must pass."""

import pytest
from mysql_testing import StoreMaker
from pinball_core.testing.store_contract import StoreContract, StoreFactory


class TestMysqlStore(StoreContract):
    @pytest.fixture
    def store_factory(self, make_store: StoreMaker) -> StoreFactory:
        return make_store
