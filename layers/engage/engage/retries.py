"""How a write that lost a race is tried again: a bounded number of attempts, spread out at random."""

import random
import time

MAX_ATTEMPTS = 6


def back_off(attempt: int) -> None:
    """Wait a little longer after each lost race, at random, so racing writers do not collide again."""
    time.sleep(random.uniform(0, 0.02 * 2**attempt))
