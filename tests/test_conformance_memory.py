"""The backend conformance suites against the in-memory backends."""

import pytest

from catalogsync import MemoryQueue, MemoryStore
from catalogsync.testing import QueueConformance, StoreConformance


class TestMemoryQueue(QueueConformance):
    @pytest.fixture
    def make_queue(self):
        """Memory queues on the test's clock."""
        return lambda clock: MemoryQueue(clock=clock)


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def make_store(self):
        """Memory stores on the test's clock."""
        return lambda clock: MemoryStore(clock=clock)
