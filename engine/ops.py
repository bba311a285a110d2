"""Every operation of the scenario language, registered by importing its module."""

from engine import alloc, device, fault, filemap, fork, gup, madvise, migrate, reclaim
from engine.machine import OPS

MODULES = (alloc, device, fault, filemap, fork, gup, madvise, migrate, reclaim)

__all__ = ["MODULES", "OPS"]
