"""Issue 9, behaviours 2 and 3: migration of page-cache folios, and truncate's orphans."""

from __future__ import annotations

import engine
from engine.model import Model
from engine.state import SWAPCACHE, World
from tests.engine.builders import config, run_sequential, scenario, sequential, violation_names

FILES = {"f": {"data": "A"}}
MAPPED = [{"mmap_file": {"addr": "fbuf", "file": "f"}}, {"write": {"addr": "fbuf", "value": "B"}}]


def final_world(sc: engine.Scenario, cfg: engine.Config, *order: str) -> World:
    model = Model(sc, cfg)
    world = model.initial()
    for name in sequential(sc, cfg, *order):
        effect = model.step(world, model.names.index(name))
        assert isinstance(effect, engine.kernel.machine.Effect)
        world = effect.world
    return world


def test_a_mapped_dirty_file_page_migrates_and_the_cache_follows() -> None:
    # folio_expected_refs: isolation + page cache + PG_private; folio_migrate_mapping
    # moves the slot to the new folio, remove_migration_ptes keeps the file mapping.
    sc = scenario({"m": [{"migrate": {"addr": "fbuf"}}]}, MAPPED, files=FILES)
    cfg = config(sc, kernel="6.4")
    world = final_world(sc, cfg, "m")
    assert world.migrated == (0,)
    new = world.file("f").cache
    assert new not in (0, -1)
    pte = world.pte("app", "fbuf")
    assert pte is not None and pte.file == "f" and pte.page == new and pte.present
    assert world.page(0).free
    run = run_sequential(sc, cfg, "m")
    assert violation_names(run) == ()


def test_a_failed_file_migration_leaves_a_shared_file_mapping() -> None:
    # A GUP reference makes the refcount check fail (-EAGAIN): the migration entry is
    # turned back into the same MAP_SHARED PTE, and a later store still writes the file.
    sc = scenario(
        {
            "dio": [{"gup": {"addr": "fbuf", "mode": "get"}}],
            "m": [{"migrate": {"addr": "fbuf"}}],
            "cpu": [{"write": {"addr": "fbuf", "value": "C"}}, {"writeback": {"file": "f"}}],
        },
        MAPPED,
        files=FILES,
    )
    cfg = config(sc, kernel="6.4")
    world = final_world(sc, cfg, "dio", "m", "cpu")
    assert world.migrated == ()
    pte = world.pte("app", "fbuf")
    assert pte is not None and pte.file == "f" and pte.page == 0
    assert world.file("f").disk == "C"


def test_truncate_orphans_the_page_a_dma_still_writes() -> None:
    # After truncate the DMA through the earlier GUP writes an orphan: no write to the file.
    sc = scenario(
        {
            "dio": [
                {"gup": {"addr": "fbuf", "mode": "pin", "write": True}},
                {"dma_write": {"value": "D"}},
                {"unpin": {"dirty": True}},
            ],
            "t": [{"truncate": {"file": "f"}}],
        },
        MAPPED,
        files=FILES,
    )
    cfg = config(sc, kernel="6.4")
    schedule = sequential(sc, cfg, "dio", "t")
    # The truncate runs between the pin and the device write.
    order = (
        [schedule[0]]
        + [s for s in schedule[1:] if s == "t"]
        + [s for s in schedule[1:] if s == "dio"]
    )
    run = engine.run_schedule(sc, cfg, order)
    assert violation_names(run) == ()


def test_the_truncated_orphan_stays_on_its_lru_until_the_last_put() -> None:
    sc = scenario(
        {"dio": [{"gup": {"addr": "fbuf", "mode": "pin"}}], "t": [{"truncate": {"file": "f"}}]},
        MAPPED,
        files=FILES,
    )
    cfg = config(sc, kernel="6.4")
    world = final_world(sc, cfg, "dio", "t")
    page = world.page(0)
    assert world.file("f").cache == -1
    assert not page.free and page.lru == "inactive_file"


def test_a_swap_cache_page_migrates_with_its_swap_cache_slot() -> None:
    # folio_migrate_mapping moves PG_swapcache and the swap-cache slot to the new folio too.
    setup = [
        {"write": {"addr": "buf", "value": "A"}},
        {"shrink_folio_list": {"addr": "buf"}},
        {"shrink_folio_list": {"addr": "buf"}},
        {"read": {"addr": "buf"}},
    ]
    sc = scenario({"m": [{"migrate": {"addr": "buf"}}]}, setup)
    cfg = config(sc, kernel="6.4")
    before = Model(sc, cfg).initial()
    pte = before.pte("app", "buf")
    assert pte is not None and pte.present
    assert before.page(pte.page).has(SWAPCACHE)
    world = final_world(sc, cfg, "m")
    pte = world.pte("app", "buf")
    assert pte is not None and pte.present
    assert world.swap[world.page(pte.page).swap].cache == pte.page
    assert world.page(pte.page).has(SWAPCACHE)
    assert violation_names(run_sequential(sc, cfg, "m")) == ()
