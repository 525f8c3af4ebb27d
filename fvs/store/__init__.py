"""The synthetic civil-registration store: citizen records and face templates."""

from fvs.store.base import CitizenStore

__all__ = ["CitizenStore"]
