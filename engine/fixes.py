"""Kernel fixes as named switches, and the kernel version that turns them on.

Every fix the catalog talks about is a switch with its commit and first release
(product.md section 4.3). A configuration is "kernel X.Y": the fixes released at
or before X.Y are on, plus per-switch overrides for "what if" questions. Design
rules are behaviour every kernel has; they are switches only so that a teacher
can turn one off and show why it exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.errors import InputError


@dataclass(frozen=True, slots=True)
class Fix:
    name: str
    commit: str
    version: str  # first mainline release; "" for design rules every kernel has
    effect: str
    reverted: str = ""  # the mainline release that removed it again; "" while it stands
    revert_commit: str = ""

    def in_kernel(self, kernel: str) -> bool:
        """On in mainline `kernel` (X.Y.0): released at or before it, and not yet reverted."""
        key = version_key(kernel)
        if version_key(self.version) > key:
            return False
        return not self.reverted or key < version_key(self.reverted)

    @property
    def releases(self) -> str:
        """The mainline releases that carry it, as the fix table shows them: "5.8" alone
        (5.8 and later) or "5.8 (reverted in 5.9)"."""
        if not self.reverted:
            return self.version
        return f"{self.version} (reverted in {self.reverted})"


FIXES: dict[str, Fix] = {
    f.name: f
    for f in (
        Fix(
            "lazyfree_refcount_check",
            "6c8e2a256915",
            "5.18",
            "try_to_unmap_one discards a lazyfree page only if clean and "
            "refcount == 1 + mapcount; otherwise remaps it and sets PG_swapbacked",
        ),
        Fix(
            "tlb_flush_nested",
            "99baac21e458",
            "4.13",
            "tlb_gather_mmu counts itself in mm->tlb_flush_pending, and tlb_finish_mmu "
            "flushes the whole range when another gather on the mm is in flight "
            "(mm_tlb_flush_nested): a madvise that found PTEs already cleaned by a "
            "concurrent one no longer returns with their stale TLB entries",
        ),
        Fix(
            "flush_tlb_batched_pending",
            "3ea277194daa",
            "4.13",
            "reclaim's batched unmap marks the mm (mm->tlb_flush_batched), and mprotect, "
            "madvise, munmap and mremap call flush_tlb_batched_pending under the PTE lock "
            "before changing its PTEs, so none returns while reclaim's deferred flush still "
            "leaves a stale writable entry",
        ),
        Fix(
            "ksm_tlb_flush_pending",
            "b3a81d0841a9",
            "4.13",
            "KSM's write_protect_page clears, flushes and counts even a read-only, clean PTE "
            "while a TLB flush is pending on the mm (mm_tlb_flush_pending): a CPU may still "
            "store through a writable entry that a deferred flush has not removed",
        ),
        Fix(
            "khugepaged_table_sync",
            # Jann Horn, "mm/khugepaged: fix GUP-fast interaction by sending IPI": a 6.1-rc
            # mm hotfix (his stable backports of "commit 2ba99c5e0881 upstream" went out on
            # 6 December 2022, before 6.1 was released).
            "2ba99c5e0881",
            "6.1",
            "after pmdp_collapse_flush khugepaged sends an IPI (tlb_remove_table_sync_one) "
            "that waits for every GUP-fast walking with interrupts disabled, so the detached "
            "PTE table is no longer walked when it is freed or reused",
        ),
        Fix(
            "tlb_flush_batched_cmpxchg",
            "5ee2fa2f0636",
            "5.17",
            "mm->tlb_flush_batched counts batches deferred and batches flushed: "
            "flush_tlb_batched_pending marks flushed only what it saw before its flush "
            "(atomic_cmpxchg), so a batch reclaim defers under another PTE lock meanwhile "
            "is not lost",
        ),
        Fix(
            "lazyfree_no_dirty_after_freeze",
            "d17be2d9ff6c",
            "5.15",
            "no PageDirty check after a successful freeze of a lazyfree page",
        ),
        Fix(
            "gup_cow_break",
            "17839856fd58",
            "5.8",
            "GUP on a COW-shared anon page breaks COW first; reverted in 5.9, after which "
            "a read-only GUP or pin takes the shared page itself until 5.19's unshare",
            reverted="5.9",
            revert_commit="a308c71bf1e6",
        ),
        Fix(
            "wp_reuse_by_refcount",
            "09854ba94c6a",
            "5.9",
            "a write fault reuses an anon page only if its refcount says nobody else holds it",
        ),
        Fix(
            "fork_copy_pinned",
            "70e806e4e645",
            "5.9",
            "fork gives the child a copy of a maybe-DMA-pinned page",
        ),
        Fix(
            "gup_fast_fork_seqcount",
            "57efa1fe5957",
            "5.11",
            "gup_fast with FOLL_PIN backs off when it races with fork",
        ),
        Fix(
            "no_swapcache_for_pinned",
            "feb889fb40fa",
            "5.11",
            "reclaim does not add maybe-pinned anon pages to the swap cache",
        ),
        Fix(
            "ext4_no_bug_on_unbuffered_dirty",
            "cc5095747edf",
            "5.18",
            "writeback warns and drops the page instead of BUG",
        ),
        Fix(
            "anon_exclusive",
            "6c287605fd56",
            "5.19",
            "PG_anon_exclusive: pins only on exclusive anon pages; unmap, migrate and "
            "fork refuse to share an exclusive page that may be pinned",
        ),
        Fix(
            "keep_pinned_private",
            "d824ec2a1546",
            "6.4",
            "reclaim does not strip buffers from a maybe-pinned page",
        ),
        Fix(
            "ext4_no_writepage",
            "dae999602eeb",
            "6.2",
            "ext4 has no ->writepage: reclaim's pageout returns PAGE_ACTIVATE for a dirty "
            "ext4 folio, and only the flusher (->writepages) writes it",
        ),
        Fix(
            "swap_cow_by_refcount",
            "c145e0b47c77",
            "5.18",
            "do_swap_page reuses a swapped-in page for a write only if its refcount says "
            "nobody else holds it (not reuse_swap_page's mapcount + swapcount == 1)",
        ),
        Fix(
            "wp_reuse_frees_swapcache",
            "53a05ad9f21d",
            "5.18",
            "do_wp_page may reuse an anon page in the swap cache: it frees the swap cache "
            "(only when no swap entry is left) and then requires refcount == 1",
        ),
        Fix(
            "swap_skip_swapcache",
            # Minchan Kim, "mm, swap: skip swapcache for swapin of synchronous device"
            # (commit dated 15 Nov 2017, the 4.15 merge window); the release is derived
            # from that date, not read in a tag.
            "0bcac06f27d7",
            "4.15",
            "on a SWP_SYNCHRONOUS_IO device (zram) do_swap_page reads an entry with one "
            "user straight into a new page, skipping the swap cache",
        ),
        Fix(
            "get_swap_device",
            "eb085574a752",
            "5.1",
            "swap-cache lookups and swapcache_prepare (and __swap_count) take "
            "get_swap_device: once swapoff cleared SWP_VALID they fail instead of "
            "reading the freed swap_map, and swapoff waits (synchronize_rcu) for holders",
        ),
        Fix(
            "do_swap_page_get_swap_device",
            # Miaohe Lin, "swap: fix do_swap_page() race with swapoff" (v6 posted
            # 26 Apr 2021, after 5.13-rc1 opened; merged with 63d8620ecf93 for 5.14).
            "2799e77529c2",
            "5.14",
            "do_swap_page holds get_swap_device from the PTE read to the end, so swapoff "
            "cannot free the device under a swap-in that skips the swap cache",
        ),
        Fix(
            "skip_swapcache_swapcache_prepare",
            "13ddaf26be32",
            "6.8",
            "a swap-in that skips the swap cache first pins the entry with "
            "swapcache_prepare (SWAP_HAS_CACHE); a racing fault gets -EEXIST and waits, so "
            "the entry cannot be freed and reused under it (ABA behind pte_same)",
        ),
        Fix(
            "free_swap_and_cache_get_swap_device",
            # Ryan Roberts, 6 Mar 2024 into mm-stable; the mainline hash was seen in a
            # commit list of the 6.9 merge window (release derived, not read in a tag).
            "82b1c07a0af6",
            "6.9",
            "free_swap_and_cache holds get_swap_device, so swapoff cannot free swap_map "
            "between __swap_entry_free and swap_page_trans_huge_swapped / "
            "__try_to_reclaim_swap",
        ),
        Fix(
            "zswap_writeback_recheck",
            # Domenico Cerasuolo; in akpm's mm-hotfixes-stable-2023-05-18 pull after
            # 6.4-rc1, so 6.4 (stable 6.3.4 and 6.1.30, CVE-2023-53178).
            "04fc7816089c",
            "6.4",
            "zswap_writeback_entry checks, once its folio is in the swap cache, that the tree "
            "still holds the entry it took: else the slot was freed and reused, and writing "
            "the stale data back would put it in the new page's swap cache",
        ),
        Fix(
            "zswap_writeback_cleanup",
            # Yosry Ahmed, posted 25 Jan 2024, Cc stable (6.8 rc's; derived, not read in a
            # tag).
            "e3b63e966cac",
            "6.8",
            "the abort path of zswap_writeback_entry's recheck unlocks and puts the folio "
            "it deleted from the swap cache (before, the folio was stranded)",
        ),
        Fix(
            "gup_longterm_touch",
            # Jason Gunthorpe's GUP interface rework for 6.3 ("mm/gup: remove the
            # restriction on locked with FOLL_LONGTERM"); its mainline hash was not
            # found in the sources available here, so none is given.
            "",
            "6.3",
            "the slow-path fallback of a FOLL_LONGTERM get_user_pages_fast / "
            "pin_user_pages_fast runs with FOLL_TOUCH (before, __gup_longterm_unlocked "
            "called __gup_longterm_locked without it: no set_page_dirty, no "
            "mark_page_accessed)",
        ),
        Fix(
            "gup_longterm_file_write_refused",
            "8ac268436e6d",
            "6.5",
            "a FOLL_LONGTERM write pin of a MAP_SHARED file mapping that needs dirty "
            "tracking is refused: -EFAULT from check_vma_flags (writable_file_mapping_allowed"
            "), and GUP-fast falls back (gup_fast_folio_allowed, a6e79df92e4a)",
        ),
        Fix(
            "gup_folio_recheck",
            "c24d37322548",
            "5.14",
            "try_grab_folio rechecks after taking the reference that the page is still in "
            "that folio (page_folio(page) == folio), else drops it: a split and a reuse of "
            "the head in between no longer leave a reference on someone else's page",
        ),
        Fix(
            "gup_fast_pmd_recheck",
            "70cbc3cc78a9",
            "6.0",
            "GUP-fast re-reads the PMD as well as the PTE after taking the reference, and "
            "backs off if khugepaged cleared it (pmdp_collapse_flush) meanwhile",
        ),
        Fix(
            "numa_migrate_pmd_overwrite",
            "d7c3393413fe",
            "4.20",
            "migrate_misplaced_transhuge_page overwrites the PMD with the new folio's entry "
            "under the PMD lock instead of clearing it first (pmdp_huge_clear_flush_notify): "
            "a MADV_DONTNEED under mmap_lock for read no longer sees it none and skips it",
        ),
        Fix(
            "pmdp_invalidate_atomic",
            "d52605d7cb30",
            "4.16",
            "pmdp_invalidate makes the PMD non-present atomically and returns its old value; "
            "__split_huge_pmd_locked takes the dirty bit from that value instead of reading "
            "it before, so a CPU's write through the still-present PMD cannot lose it",
        ),
        Fix(
            "lazyfree_folio_no_split",
            "820c4e2e6f51",
            "5.18",
            "shrink_folio_list no longer splits a large folio that is not swap-backed (file "
            "or lazyfree) before unmapping it: try_to_unmap splits its PMD, each PTE is "
            "discarded, and the folio is freed whole",
        ),
        Fix(
            "thp_migration",
            "616b8371539a",
            "4.14",
            "migrate_pages moves a PMD-mapped THP whole: try_to_migrate_one replaces the huge "
            "PMD by a PMD migration entry (set_pmd_migration_entry) and remove_migration_pmd "
            "maps the copy with a huge PMD; before, the PMD was split first",
        ),
        Fix(
            "pmd_migration_entry_atomic",
            "8a8683ad9ba4",
            "5.6",
            "set_pmd_migration_entry takes the PMD's dirty bit from the value pmdp_invalidate "
            "returns; before, it read the PMD first with a plain load, and a write through "
            "the PMD in between lost the dirty bit",
        ),
        Fix(
            "split_pmd_migration_no_invalidate",
            "3a5a8d343e1c",
            "6.10",
            "__split_huge_pmd_locked calls pmdp_invalidate only on a present PMD; on a PMD "
            "migration entry it had marked the entry invalid, which arm64's pmd_present() "
            "takes for a present PMD, so GUP-fast could read the entry's bits as a page",
        ),
        Fix(
            "split_skips_pmd_migration_entry",
            "be6e843fc51a",
            "6.15",
            "split_huge_pmd_locked returns early on a PMD migration entry when it splits for "
            "a given folio; before, it applied pmd_folio() to the entry (an rmap walk of "
            "another folio reaching a THP under migration), an invalid address",
        ),
        Fix(
            "migrate_unqueue_deferred",
            "9bcef5973e31",
            "6.7",
            "migration takes an old large folio off the deferred split queue "
            "(mem_cgroup_migrate: folio_undo_large_rmappable, under the memcg's queue lock); "
            "before, it stayed queued until freed",
        ),
        Fix(
            "migrate_unqueue_frozen",
            "be9581ea8c05",
            "6.10",
            "folio_migrate_mapping takes an anon large folio off the deferred split queue "
            "only with its refcount frozen at the expected count, so a deferred_split_scan "
            "holding it makes the migration fail instead of corrupting the scanner's list",
        ),
    )
}

DESIGN_RULES: dict[str, Fix] = {
    f.name: f
    for f in (
        Fix(
            "pmd_change_in_place",
            # Kirill A. Shutemov's "thp: fix few MADV_DONTNEED races" (4.11, older than the
            # oldest modelled kernel): ced108037c2a (change_huge_pmd), 58ceeb6bec86
            # (madvise_free_huge_pmd), 5b7abeae3af8 (clear_soft_dirty_pmd).
            "58ceeb6bec86",
            "",
            "a PMD rewritten under mmap_lock for read is changed in place (or through "
            "pmdp_invalidate), never cleared and set again: a MADV_DONTNEED looking at it "
            "without the lock would skip a none PMD",
        ),
        Fix(
            "lazyfree_freeze",
            "",
            "",
            "reclaim freezes the refcount before freeing a lazyfree page",
        ),
        Fix(
            "gup_fast_recheck",
            "",
            "",
            "GUP-fast re-reads the PTE after taking the reference",
        ),
        Fix(
            "swapin_recheck_swap_entry",
            # Hugh Dickins, "mm: further fix swapin race condition": posted against
            # 2.6.36-rc4 on 19 Sep 2010, signed off by Linus (mainline hash read on a
            # googlesource mirror of linux), so 2.6.36, older than every kernel modelled
            # here (4.12+): a design rule, off only as a what-if.
            "31c4a3d3a0f8",
            "",
            "do_swap_page, once it holds the folio lock, checks that the swap-cache folio is "
            "still the swap cache of the entry it read from the PTE (page_private == "
            "entry.val), not only PageSwapCache: a folio that left the swap cache and came "
            "back on another slot is not mapped where the old slot was reused",
        ),
        Fix(
            "fork_swap_pte_shared",
            # David Hildenbrand, "mm/swap: remember PG_anon_exclusive via a swp pte bit"
            # (5.19): the bit and this rule came in together.
            "1493a1913e34",
            "",
            "fork's copy_nonpresent_pte clears the exclusive bit of a swap PTE it shares "
            "(pte_swp_clear_exclusive in parent and child), so neither swap-in may map the "
            "page writable without the refcount check",
        ),
        Fix(
            "rcu_gup_fast",
            # Peter Zijlstra / Steve Capper, "mm: introduce a general RCU
            # get_user_pages_fast()" (3.18): GUP-fast protected by RCU-freed page tables.
            "2667f50e8b81",
            "",
            "a TLB flush does not wait for GUP-fast (page tables freed by RCU; flushes "
            "without an IPI to every CPU: arm64, powerpc radix, x86 under a hypervisor). Off: "
            "the flush is an IPI that waits for a CPU whose interrupts GUP-fast disabled "
            "(x86 native), so pmdp_collapse_flush and KSM's ptep_clear_flush wait for its walk",
        ),
        Fix(
            "tlb_flush_before_free",
            # Mel Gorman, "mm: send one IPI per CPU to TLB flush all entries after
            # unmapping pages" (4.3): the batch and this rule came in together.
            "72b252aed506",
            "",
            "reclaim frees the pages it unmapped with TTU_BATCH_FLUSH only after "
            "try_to_unmap_flush: no CPU can still reach a freed page through its TLB",
        ),
        Fix(
            "tlb_flush_dirty_before_io",
            # Mel Gorman, "mm: defer flush of writable TLB entries" (4.3, with the batch).
            "d950c9477d51",
            "",
            "reclaim flushes deferred TLB entries (try_to_unmap_flush_dirty) before pageout "
            "cleans a dirty folio for I/O: no store through a writable entry lands after "
            "the data was taken for the write",
        ),
        Fix(
            "ksm_count_after_flush",
            # KSM's original merge (2.6.32): write_protect_page clears the PTE and flushes
            # before it counts references.
            "31dbd01f3143",
            "",
            "KSM's write_protect_page clears and flushes the PTE before it compares the "
            "refcount with mapcount + 1 + swapcache: a GUP-fast that took its reference "
            "after the count must see the PTE change and back off",
        ),
        Fix(
            "freeze_before_dirty",
            "",
            "",
            "__remove_mapping checks the refcount before PG_dirty",
        ),
        Fix(
            "pagecache_reload",
            "",
            "",
            "a lockless page-cache lookup re-checks the slot after folio_try_get",
        ),
        Fix(
            "migrate_refcount_check",
            "",
            "",
            "migration refuses a page whose refcount is not the expected one",
        ),
    )
}

SWITCHES: dict[str, Fix] = {**FIXES, **DESIGN_RULES}

# The oldest kernel with every path modelled here (MADV_FREE reclaim, v4.12) and
# the newest release that any modelled fix (or revert) needs. "Kernel X.Y" is always
# mainline X.Y.0: stable trees carry backports that these versions do not.
OLDEST_KERNEL = "4.12"
_VERSION = re.compile(r"^([0-9])\.([0-9]{1,2})$")  # ASCII digits only


def version_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


NEWEST_KERNEL = max(
    (v for f in FIXES.values() for v in (f.version, f.reverted) if v), key=version_key
)


def valid_kernel(version: str) -> bool:
    if not _VERSION.match(version):
        return False
    return version_key(OLDEST_KERNEL) <= version_key(version) <= (6, 99)


class ConfigError(InputError):
    """A variant, kernel or fix override that does not exist."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Config:
    """The kernel being simulated: its version and every switch, resolved."""

    kernel: str
    fixes: Mapping[str, bool]
    variant: str | None = None
    overrides: Mapping[str, bool] = field(default_factory=dict)

    def on(self, name: str) -> bool:
        return self.fixes[name]

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={'on' if v else 'off'}" for k, v in sorted(self.overrides.items()))
        return f"{self.kernel} ({extra})" if extra else self.kernel


def fixes_for(kernel: str) -> dict[str, bool]:
    """Every switch for a kernel: fixes released at or before it, design rules on."""
    resolved = {name: f.in_kernel(kernel) for name, f in FIXES.items()}
    resolved.update(dict.fromkeys(DESIGN_RULES, True))
    return resolved


def check_overrides(overrides: Mapping[str, object], where: str) -> dict[str, bool]:
    checked: dict[str, bool] = {}
    for name, value in overrides.items():
        if name not in SWITCHES:
            allowed = ", ".join(SWITCHES)
            raise ConfigError(f"{where}.{name}", f"unknown fix; allowed: {allowed}")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}.{name}", "must be true or false")
        checked[name] = value
    return checked


def build_config(
    kernel: str, overrides: Mapping[str, bool] | None = None, variant: str | None = None
) -> Config:
    if not valid_kernel(kernel):
        raise ConfigError(
            "kernel", f"{kernel!r} is not a kernel version between {OLDEST_KERNEL} and 6.99"
        )
    fixes = fixes_for(kernel)
    fixes.update(overrides or {})
    return Config(kernel=kernel, fixes=fixes, variant=variant, overrides=dict(overrides or {}))
