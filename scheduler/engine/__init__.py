"""The engine: the timer, planning, the ready queue and its limits, the workers, and the pure
policies (misfire, outcomes, retry) it applies."""
