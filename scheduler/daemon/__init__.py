"""The daemon: the composition root (config -> objects, web server, signals, sd_notify,
reload, ordered shutdown). It sits above the API it serves."""
