"""The HTTP API: ``create_app`` builds the aiohttp application around a Scheduler."""

from scheduler.api.app import create_app

__all__ = ["create_app"]
