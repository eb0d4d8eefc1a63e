"""The ``Scheduler`` facade: the composition the daemon and embedding apps share."""
