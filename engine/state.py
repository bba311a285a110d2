"""The world: pages, page tables, swap, page cache, locks and what each actor holds.

Everything here is an immutable, hashable value so that the explorer can cache
distinct states. Pages are numbered P0, P1, ... in allocation order; a freed page
keeps its slot (and its stale data) so that a late access to it can be detected,
and the allocator hands the most recently freed one out again.

The values are typed NamedTuples rather than frozen dataclasses, for speed: the
explorer builds several per step and hashes and compares every successor. A
frozen dataclass sets each field through object.__setattr__ and hashes and
compares in Python, which was half of its time; a tuple is built, hashed and
compared in C, and is just as immutable. (mypy's strict equality keeps a Page
from being compared with a Pte, which a tuple would otherwise allow.) Each
value has a typed `evolve`, like dataclasses.replace, that builds the new
value positionally.
"""

from __future__ import annotations

from typing import NamedTuple

# tuple.__new__ itself: each value's `evolve` builds its new value with it, positionally,
# without the Python-level __new__ a NamedTuple class call goes through (a quarter of evolve).
_new = tuple.__new__

GUP_PIN_COUNTING_BIAS = 1024
ZERO_PAGE = -2  # the shared zero page: read-only, never freed, holds "0"
NO_PAGE = -1
# A large folio is modelled with HPAGE_NR subpages standing for HPAGE_PMD_NR (512 on x86-64):
# two are enough for every race of the catalog, which needs a head and one tail, a subpage
# mapped and one unmapped, and keeps the state space of each subpage's PTE small.
HPAGE_ORDER = 1
HPAGE_NR = 1 << HPAGE_ORDER

# Page flag bits (include/linux/page-flags.h names, PG_ prefix dropped).
LOCKED = 1
DIRTY = 2
WRITEBACK = 4
SWAPBACKED = 8
SWAPCACHE = 16
PRIVATE = 32
ANON_EXCLUSIVE = 64
REFERENCED = 128
RECLAIM = 256  # PG_reclaim: reclaim wants the folio freed once its writeback ends
KSM = 512  # PageKsm: a KSM page, shared read-only by every mapping KSM merged into it

FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (LOCKED, "locked"),
    (DIRTY, "dirty"),
    (WRITEBACK, "writeback"),
    (SWAPBACKED, "swapbacked"),
    (SWAPCACHE, "swapcache"),
    (PRIVATE, "private"),
    (ANON_EXCLUSIVE, "anon_exclusive"),
    (REFERENCED, "referenced"),
    (RECLAIM, "reclaim"),
    (KSM, "ksm"),
)


class Page(NamedTuple):
    """struct folio, order 0. `ref` is the whole _refcount, pin bias included."""

    ref: int = 1
    pins: int = 0
    mapcount: int = 0
    flags: int = 0
    lru: str = ""  # "" = not on an LRU (PG_lru clear); else the list's name
    data: str = "0"
    owner: str = ""  # "" free; "anon"; "file:NAME"; "other:NAME" (alloc_page)
    gen: int = 0  # bumped at every allocation: a reference taken on an older gen is stale
    locker: str = ""  # actor holding PG_locked
    swap: int = -1  # swap slot while in the swap cache
    # Large folios (struct folio of order > 0). The head carries the folio's refcount,
    # _pincount (`pins`, exact for large folios), flags, LRU, owner and the entire (PMD)
    # mapcount; each subpage its own mapcount, PG_anon_exclusive and data. A tail's `ref`
    # is 0, as a tail page's _refcount is, and `head` names its head page.
    order: int = 0
    head: int = -1  # a tail page's head (compound_head); -1 for a head or an order-0 page
    entire: int = 0  # the head's _entire_mapcount: PMD mappings of the whole folio

    def evolve(
        self,
        *,
        ref: int | None = None,
        pins: int | None = None,
        mapcount: int | None = None,
        flags: int | None = None,
        lru: str | None = None,
        data: str | None = None,
        owner: str | None = None,
        gen: int | None = None,
        locker: str | None = None,
        swap: int | None = None,
        order: int | None = None,
        head: int | None = None,
        entire: int | None = None,
    ) -> Page:
        """This page with the given fields changed."""
        return _new(
            Page,
            (
                self.ref if ref is None else ref,
                self.pins if pins is None else pins,
                self.mapcount if mapcount is None else mapcount,
                self.flags if flags is None else flags,
                self.lru if lru is None else lru,
                self.data if data is None else data,
                self.owner if owner is None else owner,
                self.gen if gen is None else gen,
                self.locker if locker is None else locker,
                self.swap if swap is None else swap,
                self.order if order is None else order,
                self.head if head is None else head,
                self.entire if entire is None else entire,
            ),
        )

    @property
    def free(self) -> bool:
        return self.owner == ""

    @property
    def anon(self) -> bool:
        return self.owner == "anon"

    @property
    def lazyfree(self) -> bool:
        return self.anon and not self.flags & SWAPBACKED

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def set(self, flag: int) -> Page:
        return self.evolve(flags=self.flags | flag)

    def clear(self, flag: int) -> Page:
        return self.evolve(flags=self.flags & ~flag)

    def maybe_dma_pinned(self) -> bool:
        """folio_maybe_dma_pinned: exact for a large folio (_pincount > 0); fuzzy for a
        small one (refcount >= GUP_PIN_COUNTING_BIAS: false positives, never negatives)."""
        if self.order:
            return self.pins > 0
        return self.ref >= GUP_PIN_COUNTING_BIAS

    @property
    def nr(self) -> int:
        """folio_nr_pages, for a head or an order-0 page."""
        return 1 << self.order


class Pte(NamedTuple):
    """One virtual address of one process: its VMA and its page-table entry."""

    page: int = NO_PAGE
    present: bool = False
    write: bool = False
    dirty: bool = False
    young: bool = False
    swap: int = -1  # swap entry (non-present)
    migration: bool = False  # migration entry (non-present)
    file: str = ""  # MAP_SHARED file mapping; "" = private anon
    exclusive_swap: bool = False  # the swap PTE remembers PG_anon_exclusive

    def evolve(
        self,
        *,
        page: int | None = None,
        present: bool | None = None,
        write: bool | None = None,
        dirty: bool | None = None,
        young: bool | None = None,
        swap: int | None = None,
        migration: bool | None = None,
        file: str | None = None,
        exclusive_swap: bool | None = None,
    ) -> Pte:
        """This entry with the given fields changed."""
        return _new(
            Pte,
            (
                self.page if page is None else page,
                self.present if present is None else present,
                self.write if write is None else write,
                self.dirty if dirty is None else dirty,
                self.young if young is None else young,
                self.swap if swap is None else swap,
                self.migration if migration is None else migration,
                self.file if file is None else file,
                self.exclusive_swap if exclusive_swap is None else exclusive_swap,
            ),
        )

    @property
    def none(self) -> bool:
        return not self.present and self.swap < 0 and not self.migration


class Pmd(NamedTuple):
    """The PMD entry over a region (addresses `buf#0` .. `buf#{HPAGE_NR-1}` make region
    `buf`). A region nobody has touched at PMD level is a PTE table (the default): its
    entries are the World's PTEs. `none` is a cleared PMD whose old table may still be
    walked by a lockless walker that read it before (pmdp_collapse_flush); `huge` maps a
    whole large folio; `invalid` is pmdp_invalidate's transient entry; `migration` is a PMD
    migration entry for the folio at `page` (set_pmd_migration_entry), which a walk sees as
    a migration entry for each subpage; `invalid_migration` is a migration entry that
    pmdp_invalidate was applied to (before 6.10, 3a5a8d343e1c), which arm64's pmd_present()
    takes for a present PMD.
    """

    kind: str = "table"  # "table" | "none" | "huge" | "invalid"
    page: int = NO_PAGE  # huge: the folio's head
    write: bool = False
    dirty: bool = False
    young: bool = False
    table: int = 0  # which PTE table a "table" entry points to (bumped by each new one)
    # A huge PMD made PROT_NONE for NUMA hinting (change_huge_pmd with prot_numa,
    # pmd_protnone): it still maps the folio, but every access faults (do_huge_pmd_numa_page)
    # and GUP-fast falls back.
    numa: bool = False

    def evolve(
        self,
        *,
        kind: str | None = None,
        page: int | None = None,
        write: bool | None = None,
        dirty: bool | None = None,
        young: bool | None = None,
        table: int | None = None,
        numa: bool | None = None,
    ) -> Pmd:
        """This entry with the given fields changed."""
        return _new(
            Pmd,
            (
                self.kind if kind is None else kind,
                self.page if page is None else page,
                self.write if write is None else write,
                self.dirty if dirty is None else dirty,
                self.young if young is None else young,
                self.table if table is None else table,
                self.numa if numa is None else numa,
            ),
        )


def split_addr(addr: str) -> tuple[str, int] | None:
    """`buf#1` -> ("buf", 1): the region and subpage of a large-folio address; None for a
    plain address."""
    region, sep, sub = addr.partition("#")
    if not sep:
        return None
    return region, int(sub)


def subpage_addr(region: str, i: int) -> str:
    return f"{region}#{i}"


class Slot(NamedTuple):
    """A swap slot: what was written to it, and its swap-map entry (mm/swapfile.c).

    The swap map's count is `entries` (swap PTEs pointing at it) plus SWAP_HAS_CACHE,
    which is set while a swap-cache folio (`cache`) holds the slot, or, with no folio,
    while a swap-in that skips the swap cache owns it (`has_cache`: swapcache_prepare,
    13ddaf26be32). A slot whose count is 0 is free, and the allocator hands it out again.
    With zswap, swap_writepage stores the page compressed (`zswap`: the number of the
    zswap entry the tree holds for the slot, 0 for none; `zdata`: its content) instead
    of writing it; `zgen` counts the entries stored for the slot, so a new one is told
    from an old one (04fc7816089c).
    """

    data: str = ""
    written: bool = False
    entries: int = 0  # swap entries (PTEs) that point at it
    cache: int = NO_PAGE
    has_cache: bool = False  # SWAP_HAS_CACHE without a swap-cache folio
    zswap: int = 0
    zdata: str = ""
    zgen: int = 0

    def evolve(
        self,
        *,
        data: str | None = None,
        written: bool | None = None,
        entries: int | None = None,
        cache: int | None = None,
        has_cache: bool | None = None,
        zswap: int | None = None,
        zdata: str | None = None,
        zgen: int | None = None,
    ) -> Slot:
        """This slot with the given fields changed."""
        return _new(
            Slot,
            (
                self.data if data is None else data,
                self.written if written is None else written,
                self.entries if entries is None else entries,
                self.cache if cache is None else cache,
                self.has_cache if has_cache is None else has_cache,
                self.zswap if zswap is None else zswap,
                self.zdata if zdata is None else zdata,
                self.zgen if zgen is None else zgen,
            ),
        )

    @property
    def stored(self) -> str | None:
        """What swap_read_folio gets: zswap's copy (zswap_load) if the tree holds one,
        else what was written to the device; None if neither."""
        if self.zswap:
            return self.zdata
        return self.data if self.written else None

    @property
    def in_use(self) -> bool:
        """A nonzero swap-map count: a swap entry, or SWAP_HAS_CACHE."""
        return self.entries > 0 or self.cache >= 0 or self.has_cache


class File(NamedTuple):
    """A one-page file: its page-cache slot, its on-disk content and its size in pages
    (i_size: 1, or 0 once truncated to EOF, when a fault gets SIGBUS and read(2) EOF)."""

    cache: int = NO_PAGE
    disk: str = "0"
    size: int = 1

    def evolve(
        self, *, cache: int | None = None, disk: str | None = None, size: int | None = None
    ) -> File:
        """This file with the given fields changed."""
        return _new(
            File,
            (
                self.cache if cache is None else cache,
                self.disk if disk is None else disk,
                self.size if size is None else size,
            ),
        )


class Expected(NamedTuple):
    """The lost-write oracle for one address (or one file): what may be observed."""

    allowed: tuple[str, ...]
    latest: str
    lazy: bool = False  # MADV_FREE since the latest write: zero-fill is legal too
    inflight: int = 0  # GUP references (DMA) outstanding for this address
    epoch: int = 0  # bumped by munmap / MADV_DONTNEED: older DMA no longer counts here

    def evolve(
        self,
        *,
        allowed: tuple[str, ...] | None = None,
        latest: str | None = None,
        lazy: bool | None = None,
        inflight: int | None = None,
        epoch: int | None = None,
    ) -> Expected:
        """This oracle entry with the given fields changed."""
        return _new(
            Expected,
            (
                self.allowed if allowed is None else allowed,
                self.latest if latest is None else latest,
                self.lazy if lazy is None else lazy,
                self.inflight if inflight is None else inflight,
                self.epoch if epoch is None else epoch,
            ),
        )

    def at_rest(self) -> tuple[str, ...]:
        return tuple(sorted({self.latest, "0"})) if self.lazy else (self.latest,)


class Proc(NamedTuple):
    name: str
    mmap_writer: str = ""  # actor holding mmap_lock for write (fork)
    mmap_readers: tuple[str, ...] = ()
    ptl: str = ""  # actor holding this process's PTE lock across steps (fork)
    seq: int = 0  # mm->write_protect_seq: odd while fork copies page tables
    has_pinned: bool = False  # MMF_HAS_PINNED
    # TLB batching state of the mm: mm->tlb_flush_pending (mmu_gathers and protection
    # changes in flight, counted since 99baac21e458) and mm->tlb_flush_batched (reclaim
    # cleared a PTE of this mm and deferred its flush: 3ea277194daa), as the two counts of
    # 5ee2fa2f0636: batches deferred, and batches flushed (unequal: a flush is owed; before
    # 5.17 a flag, which flush_tlb_batched_pending cleared whatever came in meanwhile).
    tlb_pending: int = 0
    tlb_batch: int = 0
    tlb_flushed: int = 0
    # Addresses whose VMA lost VM_WRITE (mprotect PROT_READ): a write fault there is a
    # SIGSEGV; and those whose mprotect has returned, after which no store may succeed.
    readonly: tuple[str, ...] = ()
    revoked: tuple[str, ...] = ()

    @property
    def tlb_batched(self) -> bool:
        """mm->tlb_flush_batched says a flush is owed for what reclaim left batched."""
        return self.tlb_batch != self.tlb_flushed

    def evolve(
        self,
        *,
        mmap_writer: str | None = None,
        mmap_readers: tuple[str, ...] | None = None,
        ptl: str | None = None,
        seq: int | None = None,
        has_pinned: bool | None = None,
        tlb_pending: int | None = None,
        tlb_batch: int | None = None,
        tlb_flushed: int | None = None,
        readonly: tuple[str, ...] | None = None,
        revoked: tuple[str, ...] | None = None,
    ) -> Proc:
        """This process with the given fields changed (its name never changes)."""
        return _new(
            Proc,
            (
                self.name,
                self.mmap_writer if mmap_writer is None else mmap_writer,
                self.mmap_readers if mmap_readers is None else mmap_readers,
                self.ptl if ptl is None else ptl,
                self.seq if seq is None else seq,
                self.has_pinned if has_pinned is None else has_pinned,
                self.tlb_pending if tlb_pending is None else tlb_pending,
                self.tlb_batch if tlb_batch is None else tlb_batch,
                self.tlb_flushed if tlb_flushed is None else tlb_flushed,
                self.readonly if readonly is None else readonly,
                self.revoked if revoked is None else revoked,
            ),
        )


class Tlb(NamedTuple):
    """One CPU's cached translation of one address of one process (x86-like).

    A store through a writable entry that is already dirty does not touch the PTE; one
    through a clean entry walks the page table to set the PTE's dirty bit (and faults if
    the PTE no longer allows it); a load through any entry reads the page it names. The
    entry outlives the PTE it was filled from until a flush removes it.
    """

    cpu: str
    proc: str
    addr: str
    page: int
    gen: int  # the page's generation when the entry was filled
    write: bool
    dirty: bool


class Actor(NamedTuple):
    """An actor's program counter and registers (the page it holds, snapshots)."""

    op: int = 0  # index of the current op; len(ops) when done
    pc: str = "start"  # the name of the op's step this actor runs next
    regs: tuple[object, ...] = ()  # op-local registers: the op machine's NamedTuple
    held: tuple[tuple[int, int], ...] = ()  # pages obtained by the last GUP: (page, gen)
    held_mode: str = ""  # "get" | "pin" | "pipe"
    held_key: str = ""  # oracle key the GUP was made for
    held_epoch: int = 0
    dma: str = ""  # value the device wrote through this GUP, if any

    def evolve(
        self,
        *,
        op: int | None = None,
        pc: str | None = None,
        regs: tuple[object, ...] | None = None,
        held: tuple[tuple[int, int], ...] | None = None,
        held_mode: str | None = None,
        held_key: str | None = None,
        held_epoch: int | None = None,
        dma: str | None = None,
    ) -> Actor:
        """This actor with the given fields changed."""
        return _new(
            Actor,
            (
                self.op if op is None else op,
                self.pc if pc is None else pc,
                self.regs if regs is None else regs,
                self.held if held is None else held,
                self.held_mode if held_mode is None else held_mode,
                self.held_key if held_key is None else held_key,
                self.held_epoch if held_epoch is None else held_epoch,
                self.dma if dma is None else dma,
            ),
        )


class World(NamedTuple):
    pages: tuple[Page, ...]
    ptes: tuple[tuple[str, str, Pte], ...]  # (proc, addr, pte), sorted
    procs: tuple[Proc, ...]
    files: tuple[tuple[str, File], ...]
    swap: tuple[Slot, ...]
    expect: tuple[tuple[str, Expected], ...]  # oracle key -> Expected, sorted
    writers: tuple[tuple[str, str], ...]  # (value, who wrote it), sorted
    actors: tuple[Actor, ...]
    freed: tuple[int, ...] = ()  # free pages, most recently freed last
    violations: tuple[str, ...] = ()  # names, sorted
    migrated: tuple[int, ...] = ()  # pages whose data migration moved elsewhere
    # PGDAT_DIRTY: a kswapd pass found only dirty file folios not yet under writeback, which
    # allows kswapd to write dirty file folios itself (shrink_node); never cleared here,
    # since the node is never balanced within a scenario.
    pgdat_dirty: bool = False
    # The swap device: its free slots (most recently freed last, the next one handed out),
    # whether it is synchronous (SWP_SYNCHRONOUS_IO, zram), its life ("" swapped on;
    # "closing" once swapoff cleared SWP_WRITEOK; "invalid" once it cleared SWP_VALID, when
    # get_swap_device fails; "off" once swap_map is freed) and who holds get_swap_device.
    swap_free: tuple[int, ...] = ()
    swap_sync: bool = False
    swap_dev: str = ""
    swap_users: tuple[str, ...] = ()
    # Whether a swap-in through the swap cache reads the neighbouring slots too
    # (swapin_readahead; `swap: {readahead: true}`, off unless a scenario asks).
    swap_readahead: bool = False
    # Whether zswap is enabled (`swap: {zswap: true}`): swap-out stores pages compressed.
    zswap: bool = False
    # PMD entries that are not a plain PTE table, (proc, region, Pmd), sorted; and the
    # deferred-split queue: large folios partially unmapped (deferred_split_folio).
    pmds: tuple[tuple[str, str, Pmd], ...] = ()
    deferred: tuple[int, ...] = ()
    # Folios deferred_split_scan moved to its own private list (still linked there through
    # _deferred_list, off the queue): only that scanner may unlink them.
    scanning: tuple[int, ...] = ()
    # The CPUs' TLBs, sorted (empty unless the scenario's actors run on CPUs).
    tlb: tuple[Tlb, ...] = ()
    # Actors in GUP-fast's interrupts-disabled walk, when a TLB flush is an IPI that waits
    # for them (the design rule rcu_gup_fast off: x86 without paravirt flushes).
    irq_off: tuple[str, ...] = ()
    # GUP-fast walks of a region's PTE table, (actor, proc, region, table), from the PMD read
    # to the end of the walk; and the tables freed while such a walk was on them (a stale
    # walker's next read of the table is a use-after-free).
    walks: tuple[tuple[str, str, str, int], ...] = ()
    freed_tables: tuple[tuple[str, str, int], ...] = ()

    def evolve(
        self,
        *,
        pages: tuple[Page, ...] | None = None,
        ptes: tuple[tuple[str, str, Pte], ...] | None = None,
        procs: tuple[Proc, ...] | None = None,
        files: tuple[tuple[str, File], ...] | None = None,
        swap: tuple[Slot, ...] | None = None,
        expect: tuple[tuple[str, Expected], ...] | None = None,
        writers: tuple[tuple[str, str], ...] | None = None,
        actors: tuple[Actor, ...] | None = None,
        freed: tuple[int, ...] | None = None,
        violations: tuple[str, ...] | None = None,
        migrated: tuple[int, ...] | None = None,
        pgdat_dirty: bool | None = None,
        swap_free: tuple[int, ...] | None = None,
        swap_sync: bool | None = None,
        swap_dev: str | None = None,
        swap_users: tuple[str, ...] | None = None,
        swap_readahead: bool | None = None,
        zswap: bool | None = None,
        pmds: tuple[tuple[str, str, Pmd], ...] | None = None,
        deferred: tuple[int, ...] | None = None,
        scanning: tuple[int, ...] | None = None,
        tlb: tuple[Tlb, ...] | None = None,
        irq_off: tuple[str, ...] | None = None,
        walks: tuple[tuple[str, str, str, int], ...] | None = None,
        freed_tables: tuple[tuple[str, str, int], ...] | None = None,
    ) -> World:
        """This world with the given parts changed."""
        return _new(
            World,
            (
                self.pages if pages is None else pages,
                self.ptes if ptes is None else ptes,
                self.procs if procs is None else procs,
                self.files if files is None else files,
                self.swap if swap is None else swap,
                self.expect if expect is None else expect,
                self.writers if writers is None else writers,
                self.actors if actors is None else actors,
                self.freed if freed is None else freed,
                self.violations if violations is None else violations,
                self.migrated if migrated is None else migrated,
                self.pgdat_dirty if pgdat_dirty is None else pgdat_dirty,
                self.swap_free if swap_free is None else swap_free,
                self.swap_sync if swap_sync is None else swap_sync,
                self.swap_dev if swap_dev is None else swap_dev,
                self.swap_users if swap_users is None else swap_users,
                self.swap_readahead if swap_readahead is None else swap_readahead,
                self.zswap if zswap is None else zswap,
                self.pmds if pmds is None else pmds,
                self.deferred if deferred is None else deferred,
                self.scanning if scanning is None else scanning,
                self.tlb if tlb is None else tlb,
                self.irq_off if irq_off is None else irq_off,
                self.walks if walks is None else walks,
                self.freed_tables if freed_tables is None else freed_tables,
            ),
        )

    # -- pages ---------------------------------------------------------------
    def page(self, index: int) -> Page:
        return self.pages[index]

    def put_page_state(self, index: int, page: Page) -> World:
        pages = list(self.pages)
        pages[index] = page
        return self.evolve(pages=tuple(pages))

    def new_page(self, page: Page) -> tuple[World, int]:
        """Allocate: reuse the most recently freed page, else a fresh one."""
        if self.freed:
            index = self.freed[-1]
            gen = self.pages[index].gen + 1
            world = self.evolve(freed=self.freed[:-1])
            return world.put_page_state(index, page.evolve(gen=gen)), index
        return self.evolve(pages=(*self.pages, page)), len(self.pages)

    def new_folio(
        self, page: Page, data: tuple[str, ...], tail_flags: int = 0
    ) -> tuple[World, int]:
        """Allocate a large folio of len(data) subpages: `page` is the head's state.

        The model's allocator keeps single free pages, so a large folio always takes fresh
        contiguous slots (the buddy allocator's order-N block); its pages, once freed, are
        order-0 free pages any allocation may reuse."""
        head = len(self.pages)
        order = (len(data) - 1).bit_length()
        tails = tuple(
            Page(ref=0, mapcount=0, flags=tail_flags, data=d, owner=page.owner, head=head)
            for d in data[1:]
        )
        first = page.evolve(order=order, data=data[0])
        return self.evolve(pages=(*self.pages, first, *tails)), head

    def folio(self, index: int) -> int:
        """page_folio: the head of the folio `index` belongs to (itself for order-0, and
        for the zero page)."""
        if index < 0:
            return index
        head = self.pages[index].head
        return index if head < 0 else head

    def folio_mapcount(self, head: int) -> int:
        """folio_mapcount: the entire (PMD) mappings, each counting every subpage's
        mapping as the kernel's total did, plus each subpage's PTE mappings."""
        page = self.pages[head]
        if not page.order:
            return page.mapcount
        return page.entire + sum(p.mapcount for p in self.pages[head : head + page.nr])

    def free_page(self, index: int) -> World:
        old = self.pages[index]
        if index in self.deferred:
            # The free path takes a folio off the deferred split queue once its refcount is 0
            # (__folio_unqueue_deferred_split): a scanner's folio_try_get can no longer find it.
            return self.evolve(deferred=tuple(d for d in self.deferred if d != index)).free_page(
                index
            )
        if old.order:
            world = self
            for sub in range(index, index + old.nr):
                p = world.pages[sub]
                world = world.put_page_state(sub, Page(ref=0, data=p.data, gen=p.gen))
            return world.evolve(freed=(*world.freed, *range(index + old.nr - 1, index - 1, -1)))
        page = Page(ref=0, data=old.data, gen=old.gen)  # stale data stays for UAF reads
        world = self.put_page_state(index, page)
        return world.evolve(freed=(*world.freed, index))

    # -- page tables ---------------------------------------------------------
    def pte(self, proc: str, addr: str) -> Pte | None:
        """What a page-table walk finds for addr: through a huge PMD, the subpage's entry
        as a PTE (pmd bits); under a cleared or invalidated PMD, nothing."""
        if self.pmds and "#" in addr:
            where = split_addr(addr)
            assert where is not None
            pmd = self.pmd(proc, where[0])
            if pmd.kind == "huge" and pmd.numa:
                # pmd_protnone: mapped, but the MMU refuses every access (a hinting fault).
                return Pte(page=pmd.page + where[1])
            if pmd.kind == "huge":
                return self.pte_of_huge(pmd, where[1])
            if pmd.kind == "migration":
                return Pte(page=pmd.page + where[1], migration=True, write=pmd.write)
            if pmd.kind != "table":
                return None
        return self.raw_pte(proc, addr)

    def raw_pte(self, proc: str, addr: str) -> Pte | None:
        """The entry in addr's PTE table itself, attached or not (a lockless walker that
        read the PMD before it was cleared still reads this)."""
        for p, a, pte in self.ptes:
            if p == proc and a == addr:
                return pte
        return None

    def set_pte(self, proc: str, addr: str, pte: Pte | None, flush: bool = True) -> World:
        """Change addr's entry. A change that revokes what a CPU may have cached (the page,
        presence, write permission or the dirty bit) is flushed from every TLB at once, as
        ptep_clear_flush and flush_tlb_page do, unless `flush` is False: a deferred flush
        (mmu_gather, TTU_BATCH_FLUSH), whose caller flushes later with flush_tlb."""
        if self.tlb and flush:
            old = self.pte(proc, addr)
            # Only a present entry is flushed when it changes: replacing an empty, swap or
            # migration entry flushes nothing, so an entry a deferred flush left behind
            # stays cached until that flush.
            if old is not None and old.present:
                return self.shootdown(proc, addr, pte).set_pte(proc, addr, pte, flush=False)
        if self.pmds and "#" in addr:
            where = split_addr(addr)
            assert where is not None
            pmd = self.pmd(proc, where[0])
            if pmd.kind == "huge":
                # Only the access bits of a huge mapping change through its subpages: an op
                # that changes what is mapped splits the PMD first (split_huge_pmd).
                assert pte is not None and pte.present and pte.page == pmd.page + where[1]
                bits = pmd.evolve(write=pte.write, dirty=pte.dirty, young=pte.young)
                return self.set_pmd(proc, where[0], bits)
        # The entries stay sorted by (proc, addr): the new one replaces addr's or goes in
        # before the first that sorts after it (no re-sort of the whole table).
        ptes = self.ptes
        place = (proc, addr)
        for j, (p, a, _) in enumerate(ptes):
            if p == proc and a == addr:
                if pte is None:
                    return self.evolve(ptes=ptes[:j] + ptes[j + 1 :])
                return self.evolve(ptes=(*ptes[:j], (proc, addr, pte), *ptes[j + 1 :]))
            if (p, a) > place:
                if pte is None:
                    return self
                return self.evolve(ptes=(*ptes[:j], (proc, addr, pte), *ptes[j:]))
        return self if pte is None else self.evolve(ptes=(*ptes, (proc, addr, pte)))

    # -- TLBs --------------------------------------------------------------------
    def tlb_entry(self, cpu: str, proc: str, addr: str) -> Tlb | None:
        for e in self.tlb:
            if e.cpu == cpu and e.proc == proc and e.addr == addr:
                return e
        return None

    def tlb_fill(self, entry: Tlb) -> World:
        """The CPU caches this translation (replacing its entry for the address)."""
        rest = [
            e
            for e in self.tlb
            if not (e.cpu == entry.cpu and e.proc == entry.proc and e.addr == entry.addr)
        ]
        return self.evolve(tlb=tuple(sorted((*rest, entry))))

    def flush_tlb(self, proc: str, addrs: tuple[str, ...] | None = None, cpu: str = "") -> World:
        """flush_tlb_range / flush_tlb_mm: drop the process's entries for `addrs` (all of
        them for None) from every CPU's TLB, or from `cpu`'s alone."""
        kept = tuple(
            e
            for e in self.tlb
            if not (
                e.proc == proc and (addrs is None or e.addr in addrs) and (not cpu or e.cpu == cpu)
            )
        )
        return self if len(kept) == len(self.tlb) else self.evolve(tlb=kept)

    def cached(self, proc: str, addr: str) -> bool:
        """Whether any CPU caches a translation of addr."""
        return any(e.proc == proc and e.addr == addr for e in self.tlb)

    def shootdown(self, proc: str, addr: str, pte: Pte | None) -> World:
        """Drop the cached translations of addr that `pte` revokes."""
        stale = tuple(
            e.cpu for e in self.tlb if e.proc == proc and e.addr == addr and revokes(e, pte)
        )
        if not stale:
            return self
        return self.evolve(
            tlb=tuple(
                e for e in self.tlb if not (e.proc == proc and e.addr == addr and e.cpu in stale)
            )
        )

    def pmd(self, proc: str, region: str) -> Pmd:
        for p, r, pmd in self.pmds:
            if p == proc and r == region:
                return pmd
        return Pmd()

    def set_pmd(self, proc: str, region: str, pmd: Pmd) -> World:
        world = self
        if self.tlb:
            old = self.pmd(proc, region)
            revoked = (old.kind, old.page) != (pmd.kind, pmd.page) or (
                (old.write and not pmd.write)
                or (old.dirty and not pmd.dirty)
                or (pmd.numa and not old.numa)
            )
            if revoked:
                # A PMD change is flushed over the whole range (pmdp_invalidate,
                # pmdp_collapse_flush, pmdp_huge_clear_flush): its subpages' entries go.
                prefix = region + "#"
                world = self.evolve(
                    tlb=tuple(
                        e for e in self.tlb if not (e.proc == proc and e.addr.startswith(prefix))
                    )
                )
        rest = [(p, r, e) for p, r, e in world.pmds if not (p == proc and r == region)]
        if pmd != Pmd():
            rest.append((proc, region, pmd))
        return world.evolve(pmds=tuple(sorted(rest, key=lambda t: (t[0], t[1]))))

    def huge_mappings(self) -> list[tuple[str, str, Pte]]:
        """Each subpage address mapped through a huge PMD, as the PTE a walk would see."""
        out = []
        for proc, region, pmd in self.pmds:
            if pmd.kind == "huge":
                nr = self.pages[pmd.page].nr
                for i in range(nr):
                    out.append((proc, subpage_addr(region, i), self.pte_of_huge(pmd, i)))
        return out

    @staticmethod
    def pte_of_huge(pmd: Pmd, i: int) -> Pte:
        return Pte(pmd.page + i, True, pmd.write, pmd.dirty, pmd.young)

    def walk(self) -> list[tuple[str, str, Pte]]:
        """Every (proc, addr, entry) a page-table walk reaches: the PTEs of attached
        tables and the subpages of huge PMDs, sorted."""
        if not self.pmds:
            return list(self.ptes)
        attached = [
            (p, a, e)
            for p, a, e in self.ptes
            if "#" not in a or self.pmd(p, a.partition("#")[0]).kind == "table"
        ]
        return sorted(attached + self.huge_mappings(), key=lambda t: (t[0], t[1]))

    def mappers(self, index: int) -> list[tuple[str, str, Pte]]:
        return [(p, a, e) for p, a, e in self.walk() if e.page == index and (e.present)]

    # -- processes -----------------------------------------------------------
    def proc(self, name: str) -> Proc | None:
        for p in self.procs:
            if p.name == name:
                return p
        return None

    def set_proc(self, proc: Proc) -> World:
        procs = [proc if p.name == proc.name else p for p in self.procs]
        if proc.name not in {p.name for p in self.procs}:
            procs.append(proc)
        return self.evolve(procs=tuple(procs))

    # -- files and swap -----------------------------------------------------
    def file(self, name: str) -> File:
        for n, f in self.files:
            if n == name:
                return f
        raise KeyError(name)

    def set_file(self, name: str, file: File) -> World:
        files = tuple((n, file if n == name else f) for n, f in self.files)
        return self.evolve(files=files)

    def set_slot(self, index: int, slot: Slot) -> World:
        swap = list(self.swap)
        if index == len(swap):
            swap.append(slot)
        else:
            swap[index] = slot
        return self.evolve(swap=tuple(swap))

    # -- the oracle -----------------------------------------------------------
    def expected(self, key: str) -> Expected | None:
        for k, e in self.expect:
            if k == key:
                return e
        return None

    def set_expected(self, key: str, exp: Expected | None) -> World:
        # Kept sorted by key, as set_pte keeps the PTEs.
        expect = self.expect
        for j, (k, _) in enumerate(expect):
            if k == key:
                if exp is None:
                    return self.evolve(expect=expect[:j] + expect[j + 1 :])
                return self.evolve(expect=(*expect[:j], (key, exp), *expect[j + 1 :]))
            if k > key:
                if exp is None:
                    return self
                return self.evolve(expect=(*expect[:j], (key, exp), *expect[j:]))
        return self if exp is None else self.evolve(expect=(*expect, (key, exp)))

    def add_writer(self, value: str, who: str) -> World:
        if (value, who) in self.writers:
            return self
        return self.evolve(writers=tuple(sorted((*self.writers, (value, who)))))

    # -- actors and violations -------------------------------------------------
    def set_actor(self, index: int, actor: Actor) -> World:
        actors = list(self.actors)
        actors[index] = actor
        return self.evolve(actors=tuple(actors))

    def record(self, violation: str) -> World:
        """This world with `violation` among those the run has broken (a set, sorted)."""
        if violation in self.violations:
            return self
        return self.evolve(violations=tuple(sorted((*self.violations, violation))))


def revokes(entry: Tlb, pte: Pte | None) -> bool:
    """Whether a cached translation is no longer what the new entry allows."""
    if pte is None or not pte.present or pte.page != entry.page:
        return True
    return (entry.write and not pte.write) or (entry.dirty and not pte.dirty)


def page_name(index: int) -> str:
    if index == ZERO_PAGE:
        return "zero page"
    return f"P{index}"


def flag_list(flags: int) -> list[str]:
    return [name for bit, name in FLAG_NAMES if flags & bit]
