"""The kernel paths: each module models one path of mm/ as operations made of atomic steps.

Importing this package registers every operation, so `OPS` is complete once it is
imported. The modules here import only `engine.state`, `engine.fixes` and each other:
they know neither the scenario language nor the checker (tests/test_architecture.py).
"""

from engine.kernel import (
    alloc,
    device,
    fault,
    filemap,
    fork,
    gup,
    khugepaged,
    ksm,
    madvise,
    migrate,
    mprotect,
    reclaim,
    swapfile,
    thp,
    zswap,
)
from engine.kernel.machine import OPS

PATHS = (
    alloc,
    device,
    fault,
    filemap,
    fork,
    gup,
    khugepaged,
    ksm,
    madvise,
    migrate,
    mprotect,
    reclaim,
    swapfile,
    thp,
    zswap,
)

__all__ = ["OPS", "PATHS"]
