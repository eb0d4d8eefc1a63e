"""Durable state: a write-ahead journal, snapshots, and recovery from both.

``codec`` frames and versions records, ``journal`` appends and fsyncs them (group commit),
``snapshot`` writes the whole store off the event loop, ``recovery`` rebuilds it at start and
checks a state directory without touching it. ``faults`` holds the crash points for tests.
"""
