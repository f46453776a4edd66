//! Route tables on DPDK's own libraries: longest-prefix match with rte_lpm/rte_lpm6 or
//! rte_fib/rte_fib6, exact match on the 5-tuple with rte_hash. Each looks a whole burst up in
//! one call. Tables are shared by every worker (`Sync`); writes are serialised by a lock.
//!
//! IPv4 LPM tables can change while workers read them: rte_lpm updates its tbl24 entries
//! atomically, and it frees tbl8 groups through DPDK's RCU (QSBR, defer-queue mode), so a
//! group a worker may still be reading is reused only after every worker reported a
//! quiescent state, which [`RouteTable::quiescent`] does once per burst.

use crate::eal::Eal;
use crate::error::Error;
use std::ffi::{c_void, CString};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// The next hop of a lookup that found nothing.
pub const NO_ROUTE: u16 = u16::MAX;

/// The fields of an IPv4 packet a lookup may use, in network byte order, laid out as in the
/// header from its TTL on (bytes 8 to 24 of a header without options, the ports after it), with
/// the TTL and the checksum zeroed: a packet's key is one 16-byte copy and a mask.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey4([u8; 16]);

/// Where [`FlowKey4`]'s fields are.
mod key4 {
    use std::ops::Range;
    pub const PROTOCOL: usize = 1;
    pub const SRC: Range<usize> = 4..8;
    pub const DST: Range<usize> = 8..12;
    pub const PORTS: Range<usize> = 12..16;
    /// The bytes of the header a key keeps: all but the TTL and the checksum.
    pub const KEPT: [u8; 16] = [
        0, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
}

impl FlowKey4 {
    pub fn new(dst: Ipv4Addr, src: Ipv4Addr, dst_port: u16, src_port: u16, protocol: u8) -> Self {
        let mut b = [0u8; 16];
        b[key4::PROTOCOL] = protocol;
        b[key4::SRC].copy_from_slice(&src.octets());
        b[key4::DST].copy_from_slice(&dst.octets());
        b[key4::PORTS].copy_from_slice(&ports_bytes(src_port, dst_port));
        FlowKey4(b)
    }

    /// The key of an IPv4 header without options: `bytes` are its bytes 8 to 24, the last 4
    /// the ports; `ports` says whether they are (else they count as zero).
    #[inline(always)]
    pub fn from_header(bytes: &[u8; 16], ports: bool) -> FlowKey4 {
        let mut kept = u128::from_ne_bytes(key4::KEPT);
        if !ports {
            kept &= u128::from_ne_bytes(no_ports::<16>());
        }
        FlowKey4((u128::from_ne_bytes(*bytes) & kept).to_ne_bytes())
    }

    /// The destination, as LPM and FIB look it up.
    pub fn dst(&self) -> [u8; 4] {
        self.0[key4::DST].try_into().expect("4 bytes")
    }

    pub fn set_dst(&mut self, dst: [u8; 4]) {
        self.0[key4::DST].copy_from_slice(&dst);
    }
}

/// As [`FlowKey4`] for IPv6 (48 bytes): the fixed header from its payload length on (which is
/// zeroed, as is the hop limit after the next header), then the ports, then 8 zero bytes that
/// make it a size rte_hash compares in vector registers (16, 32, 48, ... bytes; 40 would take
/// memcmp).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey6([u8; KEY6_LEN]);

const KEY6_LEN: usize = 48;

/// Where [`FlowKey6`]'s fields are.
mod key6 {
    use std::ops::Range;
    pub const PAYLOAD_LEN: Range<usize> = 0..2;
    pub const PROTOCOL: usize = 2;
    pub const HOP_LIMIT: usize = 3;
    pub const SRC: Range<usize> = 4..20;
    pub const DST: Range<usize> = 20..36;
    pub const PORTS: Range<usize> = 36..40;
    /// What comes from the packet.
    pub const HEADER: Range<usize> = 0..40;
}

impl Default for FlowKey6 {
    fn default() -> Self {
        FlowKey6([0; KEY6_LEN])
    }
}

impl FlowKey6 {
    pub fn new(dst: Ipv6Addr, src: Ipv6Addr, dst_port: u16, src_port: u16, protocol: u8) -> Self {
        let mut b = [0u8; KEY6_LEN];
        b[key6::PROTOCOL] = protocol;
        b[key6::SRC].copy_from_slice(&src.octets());
        b[key6::DST].copy_from_slice(&dst.octets());
        b[key6::PORTS].copy_from_slice(&ports_bytes(src_port, dst_port));
        FlowKey6(b)
    }

    /// As [`FlowKey4::from_header`], into `self` (a 48-byte key is best not moved again):
    /// `bytes` are the fixed header's bytes 4 to 40 and the 4 after it.
    #[inline(always)]
    pub fn set_from_header(&mut self, bytes: &[u8; 40], ports: bool) {
        let b = &mut self.0;
        b[key6::HEADER].copy_from_slice(bytes);
        b[key6::HEADER.end..].fill(0);
        b[key6::PAYLOAD_LEN].fill(0);
        b[key6::HOP_LIMIT] = 0;
        if !ports {
            b[key6::PORTS].fill(0);
        }
    }

    pub fn dst(&self) -> [u8; 16] {
        self.0[key6::DST].try_into().expect("16 bytes")
    }

    pub fn set_dst(&mut self, dst: [u8; 16]) {
        self.0[key6::DST].copy_from_slice(&dst);
    }
}

/// Source and destination port as they follow each other in the packet.
fn ports_bytes(src: u16, dst: u16) -> [u8; 4] {
    let (s, d) = (src.to_be_bytes(), dst.to_be_bytes());
    [s[0], s[1], d[0], d[1]]
}

/// A mask of `N` bytes that clears the last 4, a key's ports.
const fn no_ports<const N: usize>() -> [u8; N] {
    let mut mask = [0xff; N];
    let mut i = N - 4;
    while i < N {
        mask[i] = 0;
        i += 1;
    }
    mask
}

/// The keys of one address family, and how a table of them is read inline.
pub trait RouteKey: Copy + Send + Sync + 'static {
    /// A view of a table that looks up one destination at a time, inside the caller's own
    /// loop over a burst, with no keys or next hops stored in between.
    type Inline<'a>: Copy;
}

impl RouteKey for FlowKey4 {
    type Inline<'a> = LpmReader<'a>;
}

impl RouteKey for FlowKey6 {
    type Inline<'a> = &'a Lpm6;
}

/// A table a burst of keys is looked up in.
pub trait RouteTable<K: RouteKey>: Send + Sync {
    /// `next_hops[i]` becomes the next hop of `keys[i]`, or [`NO_ROUTE`].
    fn lookup(&self, keys: &[K], next_hops: &mut [u16]);

    /// The table's inline view, for tables keyed on the destination alone that have one.
    fn inline(&self) -> Option<K::Inline<'_>> {
        None
    }

    /// `lcore` will look up from now on (needed by tables that change live).
    fn reader_online(&self, _lcore: u32) {}

    /// `lcore` holds no reference into the table (after each burst). The caller passes its
    /// lcore id rather than have it read from thread-local storage on every burst.
    fn quiescent(&self, _lcore: u32) {}

    /// `lcore` stops looking up.
    fn reader_offline(&self, _lcore: u32) {}
}

/// Up to this many keys per lookup call (a burst).
const MAX_KEYS: usize = crate::mbuf::MAX_BURST;

/// How many keys one call looks up, and their IPv4 destinations as host-order integers
/// (the layout rte_lpm and rte_fib take).
fn destinations_v4(keys: &[FlowKey4], room: usize) -> (usize, [u32; MAX_KEYS]) {
    let n = keys.len().min(MAX_KEYS).min(room);
    let mut ips = [0u32; MAX_KEYS];
    for (ip, key) in ips.iter_mut().zip(&keys[..n]) {
        *ip = u32::from_be_bytes(key.dst());
    }
    (n, ips)
}

/// As [`destinations_v4`] for IPv6: the 16-byte arrays rte_lpm6 and rte_fib6 take.
fn destinations_v6(keys: &[FlowKey6], room: usize) -> (usize, [[u8; 16]; MAX_KEYS]) {
    let n = keys.len().min(MAX_KEYS).min(room);
    let mut ips = [[0u8; 16]; MAX_KEYS];
    for (ip, key) in ips.iter_mut().zip(&keys[..n]) {
        *ip = key.dst();
    }
    (n, ips)
}

/// A name DPDK has not seen in this process (its tables live in a named registry).
fn unique_name(kind: &str) -> CString {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    CString::new(format!("sluice_{kind}_{n}")).expect("no NUL")
}

fn socket(node: Option<u32>) -> i32 {
    node.map_or(dpdk_sys::SOCKET_ID_ANY, |n| n as i32)
}

/// DPDK's RCU state for the readers of one table, one slot per lcore.
struct Qsbr(NonNull<dpdk_sys::rte_rcu_qsbr>);

impl Qsbr {
    fn new(node: Option<u32>) -> Result<Qsbr, Error> {
        let threads = dpdk_sys::RTE_MAX_LCORE;
        // SAFETY: pure size computation.
        let size = unsafe { dpdk_sys::rte_rcu_qsbr_get_memsize(threads) };
        // SAFETY: allocates zeroed, cache-aligned memory of `size` bytes (the EAL is up).
        let raw = unsafe {
            dpdk_sys::rte_zmalloc_socket(std::ptr::null(), size, 64, socket(node))
                as *mut dpdk_sys::rte_rcu_qsbr
        };
        let ptr = NonNull::new(raw).ok_or_else(|| {
            Error::Config("out of hugepage memory for the LPM's RCU state: raise -m".into())
        })?;
        // SAFETY: `ptr` is `size` bytes for `threads` threads, as rte_rcu_qsbr_init expects.
        let ret = unsafe { dpdk_sys::rte_rcu_qsbr_init(ptr.as_ptr(), threads) };
        if ret != 0 {
            // SAFETY: allocated above, not shared yet.
            unsafe { dpdk_sys::rte_free(ptr.as_ptr().cast()) };
            return Err(Error::from_rte_errno("rte_rcu_qsbr_init"));
        }
        Ok(Qsbr(ptr))
    }
}

/// The calling thread's lcore id (RTE_MAX_LCORE's sentinel on a thread that is not one).
pub fn current_lcore() -> u32 {
    // SAFETY: reads the calling thread's lcore id.
    unsafe { dpdk_sys::sluice_lcore_id() }
}

/// Groups of 256 tbl8 entries an rte_lpm table has, for routes longer than 24 bits.
const LPM_TBL8_GROUPS: u32 = 1 << 12;

/// The bit of an rte_lpm entry that says it holds a next hop (or, in tbl24 with the group bit,
/// a tbl8 group).
const VALID: u32 = dpdk_sys::RTE_LPM_LOOKUP_SUCCESS;

/// rte_lpm's DIR-24-8 arrays, read in place as `rte_lpm_lookup` (a static inline function)
/// reads them: the IPv4 LPM's inline view.
#[derive(Clone, Copy)]
pub struct LpmReader<'a> {
    tbl24: &'a [AtomicU32; dpdk_sys::RTE_LPM_TBL24_NUM_ENTRIES as usize],
    tbl8: &'a [AtomicU32],
    /// The default route's next hop ([`DefaultRoute`]), for addresses no prefix covers.
    default: &'a DefaultRoute,
}

impl LpmReader<'_> {
    /// The next hop of host-order `ip`, or [`NO_ROUTE`] if no route covers it.
    #[inline(always)]
    pub fn next_hop(&self, ip: u32) -> u16 {
        const GROUP: u32 = dpdk_sys::RTE_LPM_VALID_EXT_ENTRY_BITMASK & !VALID;
        // An entry is its next hop in the low 24 bits, then the valid and group bits. Acquire
        // pairs with the writer's release store of a tbl24 entry that points into a tbl8 group
        // it has just filled (free on x86, where every load is one).
        let entry = self.tbl24[(ip >> 8) as usize].load(Ordering::Acquire);
        if entry & (GROUP | VALID) == VALID {
            // Next hops are port ids: 16 bits hold them.
            return entry as u16;
        }
        self.next_hop_beyond_tbl24(entry, ip)
    }

    /// [`LpmReader::next_hop`] for an address whose tbl24 entry is not its route: a route
    /// longer than 24 bits (the entry points to a tbl8 group), or the default route.
    #[cold]
    #[inline(never)]
    fn next_hop_beyond_tbl24(&self, tbl24_entry: u32, ip: u32) -> u16 {
        let mut entry = 0;
        if tbl24_entry & VALID != 0 {
            let group = (tbl24_entry & 0x00ff_ffff) as usize;
            let at =
                group * dpdk_sys::RTE_LPM_TBL8_GROUP_NUM_ENTRIES as usize + (ip & 0xff) as usize;
            entry = self.tbl8.get(at).map_or(0, |e| e.load(Ordering::Acquire));
        }
        if entry & VALID == 0 {
            return self.default.or_no_route();
        }
        entry as u16
    }
}

/// The route of depth 0, which rte_lpm and rte_lpm6 do not take (their depths start at 1):
/// the next hop of an address no prefix covers, or [`NO_ROUTE`]. One atomic word, so it
/// changes under readers like any route.
struct DefaultRoute(AtomicU32);

impl DefaultRoute {
    fn new() -> DefaultRoute {
        DefaultRoute(AtomicU32::new(u32::from(NO_ROUTE)))
    }

    /// What a lookup that finds no prefix returns: the next hop or [`NO_ROUTE`].
    fn or_no_route(&self) -> u16 {
        self.0.load(Ordering::Relaxed) as u16
    }

    fn set(&self, next_hop: u16) {
        self.0.store(u32::from(next_hop), Ordering::Relaxed);
    }

    /// Removes the default route; false if there was none.
    fn delete(&self) -> bool {
        self.0.swap(u32::from(NO_ROUTE), Ordering::Relaxed) != u32::from(NO_ROUTE)
    }
}

/// IPv4 longest-prefix match on rte_lpm, changeable while workers read it.
pub struct Lpm {
    raw: NonNull<dpdk_sys::rte_lpm>,
    qsbr: Qsbr,
    writer: Mutex<()>,
    default: DefaultRoute,
}

// SAFETY: rte_lpm lookups are safe from many threads at once; writers are serialised by
// `writer`, and freed tbl8 groups are reclaimed through the QSBR readers report to.
unsafe impl Send for Lpm {}
// SAFETY: as above.
unsafe impl Sync for Lpm {}

impl Lpm {
    pub fn new(_eal: &Eal, max_rules: u32, node: Option<u32>) -> Result<Lpm, Error> {
        let name = unique_name("lpm");
        let config = dpdk_sys::rte_lpm_config {
            max_rules,
            number_tbl8s: LPM_TBL8_GROUPS,
            flags: 0,
        };
        // SAFETY: valid name and config; the EAL is up (`_eal`).
        let raw = unsafe { dpdk_sys::rte_lpm_create(name.as_ptr(), socket(node), &config) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno("rte_lpm_create"))?;
        let qsbr = Qsbr::new(node).inspect_err(|_| {
            // SAFETY: created above, not shared.
            unsafe { dpdk_sys::rte_lpm_free(raw.as_ptr()) }
        })?;
        let mut rcu = dpdk_sys::rte_lpm_rcu_config {
            v: qsbr.0.as_ptr(),
            mode: dpdk_sys::RTE_LPM_QSBR_MODE_DQ,
            ..Default::default()
        };
        // SAFETY: both objects are live; the LPM keeps a pointer to the QSBR, which `Lpm`
        // frees only after the LPM.
        let ret = unsafe { dpdk_sys::rte_lpm_rcu_qsbr_add(raw.as_ptr(), &mut rcu) };
        let lpm = Lpm {
            raw,
            qsbr,
            writer: Mutex::new(()),
            default: DefaultRoute::new(),
        };
        if ret != 0 {
            return Err(Error::from_rte_errno("rte_lpm_rcu_qsbr_add"));
        }
        Ok(lpm)
    }

    /// Adds or replaces the route to `prefix/depth` (depth 0: the default route).
    pub fn add(&self, prefix: Ipv4Addr, depth: u8, next_hop: u16) -> Result<(), Error> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if depth == 0 {
            self.default.set(next_hop);
            return Ok(());
        }
        // SAFETY: writers are serialised; readers may run concurrently (see the module doc).
        let ret = unsafe {
            dpdk_sys::rte_lpm_add(
                self.raw.as_ptr(),
                u32::from(prefix),
                depth,
                u32::from(next_hop),
            )
        };
        if ret < 0 {
            return Err(Error::from_ret(
                format!("adding route {prefix}/{depth}"),
                ret,
            ));
        }
        Ok(())
    }

    /// Deletes the route to `prefix/depth`; false if there was none.
    pub fn delete(&self, prefix: Ipv4Addr, depth: u8) -> bool {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if depth == 0 {
            return self.default.delete();
        }
        // SAFETY: as in `add`.
        unsafe { dpdk_sys::rte_lpm_delete(self.raw.as_ptr(), u32::from(prefix), depth) == 0 }
    }
}

impl RouteTable<FlowKey4> for Lpm {
    fn inline(&self) -> Option<LpmReader<'_>> {
        let raw = self.raw.as_ptr();
        let tbl8_entries = (LPM_TBL8_GROUPS * dpdk_sys::RTE_LPM_TBL8_GROUP_NUM_ENTRIES) as usize;
        // SAFETY: tbl24 is an array inside the table and tbl8 points to the LPM_TBL8_GROUPS
        // groups rte_lpm_create allocated; both live as long as `self`. Their 4-byte entries
        // (bitfields in one u32) are written by rte_lpm with atomic stores while readers run
        // (tbl8 groups are reused only after every reader's quiescent state), so they are read
        // as atomics, never through plain references.
        unsafe {
            Some(LpmReader {
                tbl24: &*(&raw const (*raw).tbl24).cast(),
                tbl8: std::slice::from_raw_parts((*raw).tbl8.cast(), tbl8_entries),
                default: &self.default,
            })
        }
    }

    fn lookup(&self, keys: &[FlowKey4], next_hops: &mut [u16]) {
        let n = keys.len().min(next_hops.len());
        let first = keys.as_ptr().cast::<u8>().wrapping_add(key4::DST.start);
        // SAFETY: `keys` and `next_hops` hold `n` entries; `first` is the first key's
        // destination in network order, and each next one a key further on, as the shim reads
        // them; lookups may run concurrently.
        unsafe {
            dpdk_sys::sluice_lpm_lookup_keys(
                self.raw.as_ptr(),
                first.cast(),
                std::mem::size_of::<FlowKey4>(),
                next_hops.as_mut_ptr(),
                n as u32,
                self.default.or_no_route(),
            )
        };
    }

    fn reader_online(&self, id: u32) {
        // SAFETY: `id` is an lcore's, below RTE_MAX_LCORE, the QSBR's size.
        unsafe {
            dpdk_sys::rte_rcu_qsbr_thread_register(self.qsbr.0.as_ptr(), id);
            dpdk_sys::sluice_rcu_qsbr_thread_online(self.qsbr.0.as_ptr(), id);
        }
    }

    #[inline]
    fn quiescent(&self, id: u32) {
        // SAFETY: as in `reader_online`; the lcore registered there.
        unsafe { dpdk_sys::sluice_rcu_qsbr_quiescent(self.qsbr.0.as_ptr(), id) }
    }

    fn reader_offline(&self, id: u32) {
        // SAFETY: as in `reader_online`.
        unsafe {
            dpdk_sys::sluice_rcu_qsbr_thread_offline(self.qsbr.0.as_ptr(), id);
            dpdk_sys::rte_rcu_qsbr_thread_unregister(self.qsbr.0.as_ptr(), id);
        }
    }
}

impl Drop for Lpm {
    fn drop(&mut self) {
        // SAFETY: no reader is left (the table is dropped with its last handle); the LPM goes
        // before the QSBR it points to.
        unsafe {
            dpdk_sys::rte_lpm_free(self.raw.as_ptr());
            dpdk_sys::rte_free(self.qsbr.0.as_ptr().cast());
        }
    }
}

/// IPv6 longest-prefix match on rte_lpm6 (built before forwarding starts).
pub struct Lpm6 {
    raw: NonNull<dpdk_sys::rte_lpm6>,
    default: DefaultRoute,
}

// SAFETY: lookups are read-only and safe from many threads; `add` takes `&mut self`.
unsafe impl Send for Lpm6 {}
// SAFETY: as above.
unsafe impl Sync for Lpm6 {}

impl Lpm6 {
    pub fn new(_eal: &Eal, max_rules: u32, node: Option<u32>) -> Result<Lpm6, Error> {
        let name = unique_name("lpm6");
        let config = dpdk_sys::rte_lpm6_config {
            max_rules,
            number_tbl8s: 1 << 16,
            flags: 0,
        };
        // SAFETY: valid name and config; the EAL is up.
        let raw = unsafe { dpdk_sys::rte_lpm6_create(name.as_ptr(), socket(node), &config) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno("rte_lpm6_create"))?;
        Ok(Lpm6 {
            raw,
            default: DefaultRoute::new(),
        })
    }

    /// Adds or replaces the route to `prefix/depth` (depth 0: the default route).
    pub fn add(&mut self, prefix: Ipv6Addr, depth: u8, next_hop: u16) -> Result<(), Error> {
        if depth == 0 {
            self.default.set(next_hop);
            return Ok(());
        }
        // SAFETY: exclusive access; the address is 16 bytes.
        let ret = unsafe {
            dpdk_sys::rte_lpm6_add(
                self.raw.as_ptr(),
                prefix.octets().as_ptr(),
                depth,
                u32::from(next_hop),
            )
        };
        if ret < 0 {
            return Err(Error::from_ret(
                format!("adding route {prefix}/{depth}"),
                ret,
            ));
        }
        Ok(())
    }
}

impl Lpm6 {
    /// The next hop of `ip`, or [`NO_ROUTE`] if no route covers it: one call of
    /// `rte_lpm6_lookup`, straight from the packet.
    #[inline(always)]
    pub fn next_hop(&self, ip: &[u8; 16]) -> u16 {
        let mut hop = 0u32;
        // SAFETY: `ip` is 16 bytes, `hop` a u32; lookups only read the table.
        let ret = unsafe { dpdk_sys::rte_lpm6_lookup(self.raw.as_ptr(), ip.as_ptr(), &mut hop) };
        if ret != 0 {
            return self.default.or_no_route();
        }
        hop as u16
    }
}

impl RouteTable<FlowKey6> for Lpm6 {
    fn inline(&self) -> Option<&Lpm6> {
        Some(self)
    }

    fn lookup(&self, keys: &[FlowKey6], next_hops: &mut [u16]) {
        let n = keys.len().min(next_hops.len());
        let first = keys.as_ptr().cast::<u8>().wrapping_add(key6::DST.start);
        // SAFETY: as for `Lpm`: `first` is the first key's 16-byte destination, each next one
        // a key further on; lookups only read the table.
        unsafe {
            dpdk_sys::sluice_lpm6_lookup_keys(
                self.raw.as_ptr(),
                first.cast(),
                std::mem::size_of::<FlowKey6>(),
                next_hops.as_mut_ptr(),
                n as u32,
                self.default.or_no_route(),
            )
        };
    }
}

impl Drop for Lpm6 {
    fn drop(&mut self) {
        // SAFETY: the last handle; no reader is left.
        unsafe { dpdk_sys::rte_lpm6_free(self.raw.as_ptr()) }
    }
}

/// IPv4 longest-prefix match on rte_fib (DIR-24-8), built before forwarding starts.
pub struct Fib(NonNull<dpdk_sys::rte_fib>);

// SAFETY: lookups are read-only and safe from many threads; `add` takes `&mut self`.
unsafe impl Send for Fib {}
// SAFETY: as above.
unsafe impl Sync for Fib {}

impl Fib {
    pub fn new(_eal: &Eal, max_rules: u32, node: Option<u32>) -> Result<Fib, Error> {
        let name = unique_name("fib");
        let mut conf = dpdk_sys::rte_fib_conf {
            type_: dpdk_sys::RTE_FIB_DIR24_8,
            default_nh: u64::from(NO_ROUTE),
            max_routes: max_rules as i32,
            ..Default::default()
        };
        conf.__bindgen_anon_1.dir24_8 = dpdk_sys::rte_fib_conf__bindgen_ty_1__bindgen_ty_1 {
            nh_sz: dpdk_sys::RTE_FIB_DIR24_8_4B,
            num_tbl8: 1 << 12,
        };
        // SAFETY: valid name and config; the EAL is up.
        let raw = unsafe { dpdk_sys::rte_fib_create(name.as_ptr(), socket(node), &mut conf) };
        NonNull::new(raw)
            .map(Fib)
            .ok_or_else(|| Error::from_rte_errno("rte_fib_create"))
    }

    pub fn add(&mut self, prefix: Ipv4Addr, depth: u8, next_hop: u16) -> Result<(), Error> {
        // SAFETY: exclusive access.
        let ret = unsafe {
            dpdk_sys::rte_fib_add(
                self.0.as_ptr(),
                u32::from(prefix),
                depth,
                u64::from(next_hop),
            )
        };
        if ret < 0 {
            return Err(Error::from_ret(
                format!("adding route {prefix}/{depth}"),
                ret,
            ));
        }
        Ok(())
    }
}

impl RouteTable<FlowKey4> for Fib {
    fn lookup(&self, keys: &[FlowKey4], next_hops: &mut [u16]) {
        let (n, mut ips) = destinations_v4(keys, next_hops.len());
        let mut hops = [0u64; MAX_KEYS];
        // SAFETY: `ips` and `hops` hold `n` entries; the lookup only reads the table.
        unsafe {
            dpdk_sys::rte_fib_lookup_bulk(
                self.0.as_ptr(),
                ips.as_mut_ptr(),
                hops.as_mut_ptr(),
                n as i32,
            )
        };
        for (out, &hop) in next_hops.iter_mut().zip(&hops[..n]) {
            *out = hop as u16; // the default next hop is NO_ROUTE
        }
    }
}

impl Drop for Fib {
    fn drop(&mut self) {
        // SAFETY: the last handle; no reader is left.
        unsafe { dpdk_sys::rte_fib_free(self.0.as_ptr()) }
    }
}

/// IPv6 longest-prefix match on rte_fib6 (trie), built before forwarding starts.
pub struct Fib6(NonNull<dpdk_sys::rte_fib6>);

// SAFETY: lookups are read-only and safe from many threads; `add` takes `&mut self`.
unsafe impl Send for Fib6 {}
// SAFETY: as above.
unsafe impl Sync for Fib6 {}

impl Fib6 {
    pub fn new(_eal: &Eal, max_rules: u32, node: Option<u32>) -> Result<Fib6, Error> {
        let name = unique_name("fib6");
        let mut conf = dpdk_sys::rte_fib6_conf {
            type_: dpdk_sys::RTE_FIB6_TRIE,
            default_nh: u64::from(NO_ROUTE),
            max_routes: max_rules as i32,
            ..Default::default()
        };
        conf.__bindgen_anon_1.trie = dpdk_sys::rte_fib6_conf__bindgen_ty_1__bindgen_ty_1 {
            nh_sz: dpdk_sys::RTE_FIB6_TRIE_4B,
            num_tbl8: 1 << 15,
        };
        // SAFETY: valid name and config; the EAL is up.
        let raw = unsafe { dpdk_sys::rte_fib6_create(name.as_ptr(), socket(node), &mut conf) };
        NonNull::new(raw)
            .map(Fib6)
            .ok_or_else(|| Error::from_rte_errno("rte_fib6_create"))
    }

    pub fn add(&mut self, prefix: Ipv6Addr, depth: u8, next_hop: u16) -> Result<(), Error> {
        // SAFETY: exclusive access; the address is 16 bytes.
        let ret = unsafe {
            dpdk_sys::rte_fib6_add(
                self.0.as_ptr(),
                prefix.octets().as_ptr(),
                depth,
                u64::from(next_hop),
            )
        };
        if ret < 0 {
            return Err(Error::from_ret(
                format!("adding route {prefix}/{depth}"),
                ret,
            ));
        }
        Ok(())
    }
}

impl RouteTable<FlowKey6> for Fib6 {
    fn lookup(&self, keys: &[FlowKey6], next_hops: &mut [u16]) {
        let (n, mut ips) = destinations_v6(keys, next_hops.len());
        let mut hops = [0u64; MAX_KEYS];
        // SAFETY: `ips` and `hops` hold `n` entries; the lookup only reads the table.
        unsafe {
            dpdk_sys::rte_fib6_lookup_bulk(
                self.0.as_ptr(),
                ips.as_mut_ptr(),
                hops.as_mut_ptr(),
                n as i32,
            )
        };
        for (out, &hop) in next_hops.iter_mut().zip(&hops[..n]) {
            *out = hop as u16;
        }
    }
}

impl Drop for Fib6 {
    fn drop(&mut self) {
        // SAFETY: the last handle; no reader is left.
        unsafe { dpdk_sys::rte_fib6_free(self.0.as_ptr()) }
    }
}

/// Keys an exact-match table can hold: plain bytes with no padding of their own.
pub trait ExactKey: RouteKey {}
impl ExactKey for FlowKey4 {}
impl ExactKey for FlowKey6 {}

/// Exact match of whole keys on rte_hash (CRC32 hash, as l3fwd's), built before forwarding.
pub struct ExactMatch<K: ExactKey> {
    raw: NonNull<dpdk_sys::rte_hash>,
    /// Next hop by the key's position in the hash.
    next_hops: Vec<u16>,
    _key: std::marker::PhantomData<K>,
}

// SAFETY: lookups are read-only and safe from many threads; `add` takes `&mut self`.
unsafe impl<K: ExactKey> Send for ExactMatch<K> {}
// SAFETY: as above.
unsafe impl<K: ExactKey> Sync for ExactMatch<K> {}

impl<K: ExactKey> ExactMatch<K> {
    /// The hash reads keys a word at a time, with no tail.
    const WHOLE_WORDS: () = assert!(std::mem::size_of::<K>().is_multiple_of(8));

    pub fn new(_eal: &Eal, entries: u32, node: Option<u32>) -> Result<ExactMatch<K>, Error> {
        let () = Self::WHOLE_WORDS;
        let name = unique_name("em");
        let params = dpdk_sys::rte_hash_parameters {
            name: name.as_ptr(),
            entries: entries.max(8),
            key_len: std::mem::size_of::<K>() as u32,
            hash_func: Some(dpdk_sys::sluice_hash_crc_words),
            // The value sluice_hash_crc_keys hashes with, for lookups with the hashes given.
            hash_func_init_val: 0,
            socket_id: socket(node),
            ..Default::default()
        };
        // SAFETY: valid parameters; the EAL is up.
        let raw = unsafe { dpdk_sys::rte_hash_create(&params) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno("rte_hash_create"))?;
        Ok(ExactMatch {
            raw,
            next_hops: vec![NO_ROUTE; entries.max(8) as usize],
            _key: std::marker::PhantomData,
        })
    }

    pub fn add(&mut self, key: &K, next_hop: u16) -> Result<(), Error> {
        // SAFETY: `key` is `key_len` bytes; exclusive access.
        let pos =
            unsafe { dpdk_sys::rte_hash_add_key(self.raw.as_ptr(), (key as *const K).cast()) };
        if pos < 0 {
            return Err(Error::from_ret("adding an exact-match rule", pos));
        }
        let pos = pos as usize;
        if pos >= self.next_hops.len() {
            self.next_hops.resize(pos + 1, NO_ROUTE);
        }
        self.next_hops[pos] = next_hop;
        Ok(())
    }
}

impl<K: ExactKey> RouteTable<K> for ExactMatch<K> {
    fn lookup(&self, keys: &[K], next_hops: &mut [u16]) {
        let n = keys.len().min(MAX_KEYS).min(next_hops.len());
        let mut ptrs = [std::ptr::null::<c_void>(); MAX_KEYS];
        for (p, key) in ptrs.iter_mut().zip(&keys[..n]) {
            *p = (key as *const K).cast();
        }
        let mut hashes = [0u32; MAX_KEYS];
        let mut positions = [0i32; MAX_KEYS];
        // SAFETY: `n` whole keys one after the other, and `n` hash slots; the hashes are the
        // table's own (its hash function with its initial value, 0), so the lookup of `n` valid
        // key pointers into `n` position slots finds what its hash function would; lookups
        // only read the hash.
        unsafe {
            dpdk_sys::sluice_hash_crc_keys(
                keys.as_ptr().cast(),
                std::mem::size_of::<K>() as u32,
                n as u32,
                hashes.as_mut_ptr(),
            );
            dpdk_sys::rte_hash_lookup_with_hash_bulk(
                self.raw.as_ptr(),
                ptrs.as_mut_ptr(),
                hashes.as_mut_ptr(),
                n as u32,
                positions.as_mut_ptr(),
            )
        };
        for (out, &pos) in next_hops.iter_mut().zip(&positions[..n]) {
            *out = usize::try_from(pos)
                .ok()
                .and_then(|p| self.next_hops.get(p).copied())
                .unwrap_or(NO_ROUTE);
        }
    }
}

impl<K: ExactKey> Drop for ExactMatch<K> {
    fn drop(&mut self) {
        // SAFETY: the last handle; no reader is left.
        unsafe { dpdk_sys::rte_hash_free(self.raw.as_ptr()) }
    }
}

/// The next hop [`Acl`] gives a packet an ACL rule denies (it is dropped as `filtered`).
pub const DENIED: u16 = u16::MAX - 1;

/// What an ACL rule does with the packets it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclAction {
    /// Route them by this port.
    Forward(u16),
    /// Drop them.
    Deny,
}

/// One rule of an [`Acl`] (l3fwd's ClassBench-style lines): prefixes of the source and
/// destination, inclusive ranges of their ports, and the protocol under a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclRule<A> {
    pub src: (A, u8),
    pub dst: (A, u8),
    pub src_ports: (u16, u16),
    pub dst_ports: (u16, u16),
    /// Value and mask: (6, 0xff) is TCP only, (0, 0) any protocol.
    pub protocol: (u8, u8),
    pub action: AclAction,
}

/// A key type an ACL classifies: where its fields lie, and how a rule becomes ACL fields.
pub trait AclKey: RouteKey {
    type Addr: Copy;
    /// The number of ACL fields.
    const FIELDS: usize;
    /// rte_acl's field definitions over the key's bytes.
    fn field_defs() -> Vec<dpdk_sys::rte_acl_field_def>;
    /// A rule's fields, in the order of [`AclKey::field_defs`].
    fn rule_fields(rule: &AclRule<Self::Addr>) -> Vec<dpdk_sys::rte_acl_field>;
}

fn acl_def(
    kind: u32,
    size: usize,
    index: usize,
    input: usize,
    offset: usize,
) -> dpdk_sys::rte_acl_field_def {
    dpdk_sys::rte_acl_field_def {
        type_: kind as u8,
        size: size as u8,
        field_index: index as u8,
        input_index: input as u8,
        offset: offset as u32,
    }
}

fn acl_field(value: u64, mask_range: u64) -> dpdk_sys::rte_acl_field {
    dpdk_sys::rte_acl_field {
        value: dpdk_sys::rte_acl_field_types { u64_: value },
        mask_range: dpdk_sys::rte_acl_field_types { u64_: mask_range },
    }
}

/// The definitions shared by both families: the protocol first (rte_acl wants a one-byte
/// field first, alone in its 4-byte input), then the addresses in 4-byte words, then the two
/// ports, which share one input and so must be defined in the order they lie in the key
/// (the source first, as in the packet).
fn acl_defs(
    protocol_at: usize,
    src_at: usize,
    dst_at: usize,
    words: usize,
    ports_at: usize,
) -> Vec<dpdk_sys::rte_acl_field_def> {
    use dpdk_sys::{RTE_ACL_FIELD_TYPE_BITMASK, RTE_ACL_FIELD_TYPE_MASK, RTE_ACL_FIELD_TYPE_RANGE};
    let mut defs = vec![acl_def(RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, 0, protocol_at)];
    for (base, at) in [(0, src_at), (words, dst_at)] {
        for w in 0..words {
            let index = 1 + base + w;
            defs.push(acl_def(
                RTE_ACL_FIELD_TYPE_MASK,
                4,
                index,
                index,
                at + 4 * w,
            ));
        }
    }
    let ports = 1 + 2 * words;
    defs.push(acl_def(RTE_ACL_FIELD_TYPE_RANGE, 2, ports, ports, ports_at));
    defs.push(acl_def(
        RTE_ACL_FIELD_TYPE_RANGE,
        2,
        ports + 1,
        ports,
        ports_at + 2,
    ));
    defs
}

/// A prefix as rte_acl's 32-bit MASK fields: each word's value (host order) and how many of
/// its bits the prefix covers.
fn prefix_words(octets: &[u8], len: u8) -> impl Iterator<Item = dpdk_sys::rte_acl_field> + '_ {
    octets.chunks_exact(4).enumerate().map(move |(w, bytes)| {
        let covered = u64::from(len).saturating_sub(32 * w as u64).min(32);
        let value = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        acl_field(u64::from(value), covered)
    })
}

fn rule_fields(
    src: (&[u8], u8),
    dst: (&[u8], u8),
    rule_ports: [(u16, u16); 2],
    protocol: (u8, u8),
) -> Vec<dpdk_sys::rte_acl_field> {
    let mut fields = vec![acl_field(u64::from(protocol.0), u64::from(protocol.1))];
    fields.extend(prefix_words(src.0, src.1));
    fields.extend(prefix_words(dst.0, dst.1));
    for (low, high) in rule_ports {
        fields.push(acl_field(u64::from(low), u64::from(high)));
    }
    fields
}

impl AclKey for FlowKey4 {
    type Addr = Ipv4Addr;
    const FIELDS: usize = 5;

    fn field_defs() -> Vec<dpdk_sys::rte_acl_field_def> {
        acl_defs(
            key4::PROTOCOL,
            key4::SRC.start,
            key4::DST.start,
            1,
            key4::PORTS.start,
        )
    }

    fn rule_fields(r: &AclRule<Ipv4Addr>) -> Vec<dpdk_sys::rte_acl_field> {
        rule_fields(
            (&r.src.0.octets(), r.src.1),
            (&r.dst.0.octets(), r.dst.1),
            [r.src_ports, r.dst_ports],
            r.protocol,
        )
    }
}

impl AclKey for FlowKey6 {
    type Addr = Ipv6Addr;
    const FIELDS: usize = 11;

    fn field_defs() -> Vec<dpdk_sys::rte_acl_field_def> {
        acl_defs(
            key6::PROTOCOL,
            key6::SRC.start,
            key6::DST.start,
            4,
            key6::PORTS.start,
        )
    }

    fn rule_fields(r: &AclRule<Ipv6Addr>) -> Vec<dpdk_sys::rte_acl_field> {
        rule_fields(
            (&r.src.0.octets(), r.src.1),
            (&r.dst.0.octets(), r.dst.1),
            [r.src_ports, r.dst_ports],
            r.protocol,
        )
    }
}

/// ACL userdata of a denying rule (forwarding rules carry port + 1; 0 is no match).
const ACL_DENY: u32 = 0x8000_0000;

/// Which implementation rte_acl classifies with (l3fwd's `--alg`).
pub fn acl_algorithm(name: &str) -> Option<dpdk_sys::rte_acl_classify_alg> {
    Some(match name {
        "scalar" => dpdk_sys::RTE_ACL_CLASSIFY_SCALAR,
        "sse" => dpdk_sys::RTE_ACL_CLASSIFY_SSE,
        "avx2" => dpdk_sys::RTE_ACL_CLASSIFY_AVX2,
        "neon" => dpdk_sys::RTE_ACL_CLASSIFY_NEON,
        "altivec" => dpdk_sys::RTE_ACL_CLASSIFY_ALTIVEC,
        "avx512x16" => dpdk_sys::RTE_ACL_CLASSIFY_AVX512X16,
        "avx512x32" => dpdk_sys::RTE_ACL_CLASSIFY_AVX512X32,
        _ => return None,
    })
}

/// The names [`acl_algorithm`] takes.
pub const ACL_ALGORITHMS: &str = "scalar, sse, avx2, neon, altivec, avx512x16, avx512x32";

/// Classification of the 5-tuple by rules with prefixes, port ranges and priorities, on
/// rte_acl; built once from its rules, the earlier of two matching rules winning (as in
/// l3fwd, where a file's first lines have the highest priority).
pub struct Acl<K: AclKey> {
    raw: NonNull<dpdk_sys::rte_acl_ctx>,
    _key: std::marker::PhantomData<fn(&K)>,
}

// SAFETY: rte_acl_classify only reads the built context, from any number of threads.
unsafe impl<K: AclKey> Send for Acl<K> {}
// SAFETY: as above.
unsafe impl<K: AclKey> Sync for Acl<K> {}

impl<K: AclKey> Acl<K> {
    pub fn new(
        _eal: &Eal,
        rules: &[AclRule<K::Addr>],
        algorithm: Option<dpdk_sys::rte_acl_classify_alg>,
        node: Option<u32>,
    ) -> Result<Acl<K>, Error> {
        let name = unique_name("acl");
        // An rte_acl_rule is its data then its fields (RTE_ACL_RULE_SZ).
        let data_len = std::mem::size_of::<dpdk_sys::rte_acl_rule>();
        let field_len = std::mem::size_of::<dpdk_sys::rte_acl_field>();
        let rule_size = data_len + field_len * K::FIELDS;
        let params = dpdk_sys::rte_acl_param {
            name: name.as_ptr(),
            socket_id: socket(node),
            rule_size: rule_size as u32,
            max_rule_num: rules.len().max(1) as u32,
        };
        // SAFETY: valid parameters; the EAL is up.
        let raw = unsafe { dpdk_sys::rte_acl_create(&params) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno("rte_acl_create"))?;
        let acl = Acl {
            raw,
            _key: std::marker::PhantomData,
        };
        if let Some(alg) = algorithm {
            // SAFETY: a live context.
            let ret = unsafe { dpdk_sys::rte_acl_set_ctx_classify(raw.as_ptr(), alg) };
            if ret != 0 {
                return Err(Error::Config(
                    "this CPU or DPDK build cannot run the chosen --alg: try scalar or sse".into(),
                ));
            }
        }
        // The rules as rte_acl lays them out, as u64 words so that the fields are aligned.
        let mut bytes = vec![0u64; (rule_size * rules.len()).div_ceil(8)];
        let max_priority = dpdk_sys::RTE_ACL_MAX_PRIORITY as usize;
        for (i, rule) in rules.iter().enumerate() {
            let data = dpdk_sys::rte_acl_rule_data {
                category_mask: 1,
                priority: max_priority.saturating_sub(i).max(1) as i32,
                userdata: match rule.action {
                    AclAction::Forward(port) => u32::from(port) + 1,
                    AclAction::Deny => ACL_DENY,
                },
            };
            let fields = K::rule_fields(rule);
            debug_assert_eq!(fields.len(), K::FIELDS);
            // SAFETY: rule i's `rule_size` bytes lie inside `bytes`, 8-aligned (rule_size is a
            // multiple of 8), and are written as the C layout: the data, then the fields.
            unsafe {
                let start = bytes.as_mut_ptr().cast::<u8>().add(i * rule_size);
                start.cast::<dpdk_sys::rte_acl_rule_data>().write(data);
                let at = start.add(data_len).cast::<dpdk_sys::rte_acl_field>();
                std::ptr::copy_nonoverlapping(fields.as_ptr(), at, K::FIELDS);
            }
        }
        // SAFETY: `rules.len()` rules of `rule_size` bytes each, as created.
        let ret = unsafe {
            dpdk_sys::rte_acl_add_rules(raw.as_ptr(), bytes.as_ptr().cast(), rules.len() as u32)
        };
        if ret != 0 {
            return Err(Error::from_ret("adding ACL rules", ret));
        }
        let defs = K::field_defs();
        let mut config = dpdk_sys::rte_acl_config {
            num_categories: 1,
            num_fields: defs.len() as u32,
            ..Default::default()
        };
        config.defs[..defs.len()].copy_from_slice(&defs);
        // SAFETY: a live context with its rules; the config is complete.
        let ret = unsafe { dpdk_sys::rte_acl_build(raw.as_ptr(), &config) };
        if ret != 0 {
            return Err(Error::from_ret("building the ACL", ret));
        }
        Ok(acl)
    }
}

impl<K: AclKey> RouteTable<K> for Acl<K> {
    fn lookup(&self, keys: &[K], next_hops: &mut [u16]) {
        let n = keys.len().min(MAX_KEYS).min(next_hops.len());
        let mut data = [std::ptr::null::<u8>(); MAX_KEYS];
        for (d, key) in data.iter_mut().zip(&keys[..n]) {
            *d = (key as *const K).cast();
        }
        let mut results = [0u32; MAX_KEYS];
        // SAFETY: `n` pointers to whole keys, which the field definitions lie within, and
        // `n` result slots for one category; classification only reads the context.
        unsafe {
            dpdk_sys::rte_acl_classify(
                self.raw.as_ptr(),
                data.as_mut_ptr(),
                results.as_mut_ptr(),
                n as u32,
                1,
            )
        };
        for (out, &result) in next_hops.iter_mut().zip(&results[..n]) {
            *out = match result {
                0 => NO_ROUTE,
                ACL_DENY => DENIED,
                port => (port - 1) as u16,
            };
        }
    }
}

impl<K: AclKey> Drop for Acl<K> {
    fn drop(&mut self) {
        // SAFETY: the last handle; no reader is left.
        unsafe { dpdk_sys::rte_acl_free(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ipv4, ipv6};

    #[test]
    fn keys_read_from_headers_equal_keys_made_from_fields() {
        let (src4, dst4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(198, 18, 1, 7));
        let mut b = [0u8; 24];
        let header = ipv4::Repr {
            src: src4,
            dst: dst4,
            protocol: ipv4::protocol::UDP,
            ttl: 64,
            payload_len: 4,
        };
        header.emit(&mut b).unwrap();
        b[20..].copy_from_slice(&[0x04, 0x00, 0x00, 0x09]);
        let bytes = b[8..24].try_into().unwrap();
        assert_eq!(
            FlowKey4::from_header(bytes, true),
            FlowKey4::new(dst4, src4, 9, 1024, ipv4::protocol::UDP)
        );
        assert_eq!(
            FlowKey4::from_header(bytes, false),
            FlowKey4::new(dst4, src4, 0, 0, ipv4::protocol::UDP)
        );
        assert_eq!(FlowKey4::from_header(bytes, true).dst(), dst4.octets());

        let (src6, dst6): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:200:0:1::9".parse().unwrap(),
        );
        let mut b = [0u8; 44];
        let header = ipv6::Repr {
            src: src6,
            dst: dst6,
            next_header: ipv4::protocol::TCP,
            hop_limit: 64,
            payload_len: 20,
        };
        header.emit(&mut b).unwrap();
        b[40..].copy_from_slice(&[0x04, 0x00, 0x00, 0x50]);
        let bytes = b[4..44].try_into().unwrap();
        for ports in [true, false] {
            let mut key = FlowKey6::default();
            key.set_from_header(bytes, ports);
            let (dport, sport) = if ports { (80, 1024) } else { (0, 0) };
            assert_eq!(
                key,
                FlowKey6::new(dst6, src6, dport, sport, ipv4::protocol::TCP)
            );
            assert_eq!(key.dst(), dst6.octets());
        }
    }
}
