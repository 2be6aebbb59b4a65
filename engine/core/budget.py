"""Time budgets of jobs.

Every RQ job works for at most its budget (CC_JOB_BUDGET_SECONDS) and hands the rest of its
work to a fresh job, which RQ kills only past an explicit timeout well above the budget
(CC_JOB_TIMEOUT_SECONDS). So a million customers or a hundred million differ in the number
of jobs, never in the length of one; and a job that is killed anyway (its worker died, a
provider hung) loses at most the chunk it was in, which its transaction rolls back.

Budgets count wall time (time.monotonic), whatever clock the engine runs on: a simulation's
virtual clock does not make a job's real work any shorter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Budget:
    """`seconds` of work from when it was made; `spent()` says when to hand over."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def spent(self) -> bool:
        return time.monotonic() - self.started >= self.seconds

    @classmethod
    def unlimited(cls) -> Budget:
        return cls(float("inf"))
