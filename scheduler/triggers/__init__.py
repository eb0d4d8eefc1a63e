"""Pure triggers: ``compile(schedule, tz, created) -> Trigger``; ``Trigger.next_after(dt)``."""
