"""A module that takes three seconds to import: a worker's start-up, for tests/test_workers.py."""

import time

time.sleep(3.0)
