//! Ethernet ports: configuration, start/stop, link, statistics, and the RX/TX queues.
//!
//! DPDK's queues are not thread-safe, so each [`RxQueue`] and [`TxQueue`] is owned by one
//! worker: `Send` (it can move to its worker's lcore) but not `Sync` or `Clone`. A port
//! stops and closes when its last handle or queue is dropped.
//!
//! A `net_memif` port's bursts are each taken under the lock its driver's disconnect takes
//! before it unmaps the peer's memory ([`DisconnectGuard`]): without it, an lcore polling
//! flat out when the peer goes dies of SIGSEGV, about once in twenty disconnects.

use crate::eal::Eal;
use crate::error::Error;
use crate::mbuf::Burst;
use crate::mempool::Mempool;
use crate::net::ethernet;
use crate::rss::{self, HashFields, RssApplied, RssConfig};
use std::cell::Cell;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

/// What to set up on a port.
#[derive(Clone, Debug)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Descriptors per RX queue (DPDK may round to what the device allows).
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub promiscuous: bool,
    /// Spread packets over the RX queues by hash (used with more than one RX queue).
    pub rss: Option<RssConfig>,
    /// The largest IP packet to receive and send (None: the device's default, 1500).
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: false,
            rss: None,
            mtu: None,
        }
    }
}

/// What a device says about itself.
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub driver: String,
    /// The NUMA socket the device is attached to (None: unknown, as for virtual devices).
    pub socket: Option<u32>,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// DPDK's `flow_type_rss_offloads`: the RTE_ETH_RSS_* bits the device hashes on.
    pub rss_offloads: u64,
    pub rss_key_size: u8,
    pub reta_size: u16,
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// The device's own counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the device because no RX descriptor was free.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// RX failed to allocate an mbuf.
    pub rx_no_mbuf: u64,
}

struct PortInner {
    id: u16,
    rss: Option<RssApplied>,
    /// For memif: the lock its bursts are taken under.
    guard: Option<DisconnectGuard>,
    // Held so that the pool the RX queues fill from, and the EAL, outlive the port.
    _pool: Mempool,
    _eal: Eal,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: no queue handle is left (each holds this inner), so nothing polls the port.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}

/// A started port. Clones share it; it stops and closes when the last clone and queue go.
#[derive(Clone)]
pub struct Port {
    inner: Arc<PortInner>,
}

/// Describes a port before it is configured.
pub fn info(port_id: u16) -> Result<PortInfo, Error> {
    // SAFETY: any port id may be asked about.
    if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
        return Err(Error::Config(format!("port {port_id} does not exist")));
    }
    let mut raw = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: the port is valid and raw is a writable rte_eth_dev_info.
    let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(port_id, &mut raw) };
    if ret != 0 {
        return Err(Error::from_ret(
            format!("cannot read the info of port {port_id}"),
            ret,
        ));
    }
    let driver = if raw.driver_name.is_null() {
        String::from("unknown")
    } else {
        // SAFETY: driver_name is a NUL-terminated string owned by the driver.
        unsafe { CStr::from_ptr(raw.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    // SAFETY: the port is valid.
    let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port_id) };
    Ok(PortInfo {
        driver,
        socket: u32::try_from(socket).ok(),
        max_rx_queues: raw.max_rx_queues,
        max_tx_queues: raw.max_tx_queues,
        rss_offloads: raw.flow_type_rss_offloads,
        rss_key_size: raw.hash_key_size,
        reta_size: raw.reta_size,
    })
}

impl PortInfo {
    /// The fields the device can hash for RSS.
    pub fn rss_fields(&self) -> HashFields {
        HashFields::from_dpdk(self.rss_offloads)
    }
}

/// RSS restricted to what the device can do, with a note saying what it could not.
fn plan_rss(id: u16, info: &PortInfo, asked: &RssConfig) -> RssApplied {
    let fields = asked.fields.intersect(info.rss_fields());
    let mut notes = Vec::new();
    if info.rss_fields().is_empty() {
        notes.push(format!(
            "port {id} ({}) has no RSS: the driver spreads packets over its queues its own way, if at all",
            info.driver
        ));
    } else if fields != asked.fields {
        notes.push(format!(
            "port {id} ({}) hashes only {} of the asked {}",
            info.driver, fields, asked.fields
        ));
    }
    if let Some(key) = &asked.key {
        if !fields.is_empty() && key.len() != usize::from(info.rss_key_size) {
            notes.push(format!(
                "port {id} ({}) takes a {}-byte RSS key, not {}: it keeps its own",
                info.driver,
                info.rss_key_size,
                key.len()
            ));
        }
    }
    RssApplied {
        asked: asked.fields,
        fields,
        reta_size: info.reta_size,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

impl Port {
    /// Configures port `id` with `config`, sets its queues up (RX queues fill from `pool`)
    /// and starts it. Returns the port and its queues, each to be handed to one worker.
    pub fn start(
        eal: &Eal,
        id: u16,
        config: &PortConfig,
        pool: &Mempool,
    ) -> Result<(Port, Vec<RxQueue>, Vec<TxQueue>), Error> {
        let info = info(id)?;
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(Error::Config(format!(
                "port {id} ({}) has at most {} RX and {} TX queues; {} RX and {} TX were asked: use fewer queues per port",
                info.driver, info.max_rx_queues, info.max_tx_queues, config.rx_queues, config.tx_queues
            )));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        if let Some(mtu) = config.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        let mut rss_key = Vec::new();
        let rss = match &config.rss {
            Some(asked) if config.rx_queues > 1 => {
                let applied = plan_rss(id, &info, asked);
                if !applied.fields.is_empty() {
                    conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                    conf.rx_adv_conf.rss_conf.rss_hf = applied.fields.to_dpdk() & info.rss_offloads;
                    if let Some(key) = asked
                        .key
                        .as_ref()
                        .filter(|k| k.len() == usize::from(info.rss_key_size))
                    {
                        rss_key = key.clone();
                        conf.rx_adv_conf.rss_conf.rss_key = rss_key.as_mut_ptr();
                        conf.rx_adv_conf.rss_conf.rss_key_len = info.rss_key_size;
                    }
                }
                Some(applied)
            }
            _ => None,
        };
        // SAFETY: the port is valid and stopped; conf is zeroed but for the RSS fields set
        // above, whose key (if any) outlives the call.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(id, config.rx_queues, config.tx_queues, &conf)
        };
        if ret != 0 {
            return Err(Error::from_ret(format!("cannot configure port {id}"), ret));
        }
        // From here on the port must be closed if anything fails: PortInner does that.
        let mut inner = PortInner {
            id,
            rss,
            guard: None,
            _pool: pool.clone(),
            _eal: eal.clone(),
        };
        let (mut rx_desc, mut tx_desc) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: the port is configured; both pointers are valid u16s.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        if ret != 0 {
            return Err(Error::from_ret(
                format!("cannot adjust descriptor counts of port {id}"),
                ret,
            ));
        }
        let socket = info.socket.map_or(dpdk_sys::SOCKET_ID_ANY, |s| s as i32) as u32;
        for q in 0..config.rx_queues {
            // SAFETY: the port is configured with this many queues; the pool outlives the port.
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if ret != 0 {
                return Err(Error::from_ret(
                    format!("cannot set up RX queue {q} of port {id}"),
                    ret,
                ));
            }
        }
        for q in 0..config.tx_queues {
            // SAFETY: as above.
            let ret = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket, std::ptr::null())
            };
            if ret != 0 {
                return Err(Error::from_ret(
                    format!("cannot set up TX queue {q} of port {id}"),
                    ret,
                ));
            }
        }
        // SAFETY: the port is configured with all its queues.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        if ret != 0 {
            return Err(Error::from_ret(format!("cannot start port {id}"), ret));
        }
        drop(rss_key);
        if info.driver == "net_memif" {
            inner.guard = DisconnectGuard::of(id);
            if inner.guard.is_none() {
                eprintln!(
                    "sluice: warning: port {id} (net_memif): the driver's data is not laid out as in DPDK 22.11, so its bursts are not guarded against the peer's disconnect"
                );
            }
        }
        let port = Port {
            inner: Arc::new(inner),
        };
        port.set_promiscuous(config.promiscuous)?;
        if port
            .rss()
            .is_some_and(|r| !r.fields.is_empty() && r.reta_size > 0)
        {
            port.spread_reta(config.rx_queues, info.reta_size)?;
        }
        let rx = (0..config.rx_queues)
            .map(|queue| RxQueue {
                port: port.clone(),
                queue,
                guard: port.inner.guard,
                _not_sync: PhantomData,
            })
            .collect();
        let tx = (0..config.tx_queues)
            .map(|queue| TxQueue {
                port: port.clone(),
                queue,
                guard: port.inner.guard,
                _not_sync: PhantomData,
            })
            .collect();
        Ok((port, rx, tx))
    }

    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// RSS as the port got it (None when not asked for, or with one RX queue).
    pub fn rss(&self) -> Option<&RssApplied> {
        self.inner.rss.as_ref()
    }

    /// Points the redirection table at the RX queues in turn.
    fn spread_reta(&self, queues: u16, reta_size: u16) -> Result<(), Error> {
        let table = rss::round_robin_reta(usize::from(reta_size), queues);
        let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        let mut conf: Vec<dpdk_sys::rte_eth_rss_reta_entry64> = table
            .chunks(group)
            .map(|chunk| {
                let mut entry = dpdk_sys::rte_eth_rss_reta_entry64 {
                    mask: if chunk.len() == 64 {
                        u64::MAX
                    } else {
                        (1u64 << chunk.len()) - 1
                    },
                    ..Default::default()
                };
                entry.reta[..chunk.len()].copy_from_slice(chunk);
                entry
            })
            .collect();
        // SAFETY: the port is started; conf holds reta_size entries in 64-entry groups.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_rss_reta_update(self.id(), conf.as_mut_ptr(), reta_size)
        };
        if ret != 0 {
            return Err(Error::from_ret(
                format!("cannot set the RSS redirection table of port {}", self.id()),
                ret,
            ));
        }
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<ethernet::Address, Error> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: the port is valid; addr is writable.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id(), &mut addr) };
        if ret != 0 {
            return Err(Error::from_ret(
                format!("cannot read the MAC address of port {}", self.id()),
                ret,
            ));
        }
        Ok(ethernet::Address(addr.addr_bytes))
    }

    /// The link state now, without waiting for negotiation.
    pub fn link(&self) -> Result<Link, Error> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: the port is valid; link is writable.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id(), &mut link) };
        if ret != 0 {
            return Err(Error::from_ret(
                format!("cannot read the link of port {}", self.id()),
                ret,
            ));
        }
        Ok(Link {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    pub fn set_promiscuous(&self, on: bool) -> Result<(), Error> {
        // SAFETY: the port is valid.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(self.id())
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(self.id())
            }
        };
        // Virtual devices without the operation answer -ENOTSUP; there is nothing to filter.
        if ret != 0 && ret != -(libc::ENOTSUP) {
            return Err(Error::from_ret(
                format!("cannot set promiscuous mode on port {}", self.id()),
                ret,
            ));
        }
        Ok(())
    }

    /// The device's counters.
    pub fn stats(&self) -> Result<PortStats, Error> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: the port is valid; s is writable.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.id(), &mut s) };
        if ret != 0 {
            return Err(Error::from_ret(
                format!("cannot read the counters of port {}", self.id()),
                ret,
            ));
        }
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        })
    }
}

/// The lock net_memif's disconnect takes between marking the port disconnected and unmapping
/// the peer's memory (see `sluice_memif_disconnect_lock` in the shim for why holding it makes
/// a burst safe). It is an `rte_spinlock_t`, taken as DPDK takes it.
#[derive(Clone, Copy)]
struct DisconnectGuard(NonNull<AtomicI32>);

// SAFETY: the lock is made to be taken from any thread; it lives in the driver's device data,
// which outlives every queue (each holds the port, which closes the device last).
unsafe impl Send for DisconnectGuard {}
// SAFETY: as above.
unsafe impl Sync for DisconnectGuard {}

impl DisconnectGuard {
    /// The lock of started memif port `id`, if its driver data is laid out as expected.
    fn of(id: u16) -> Option<DisconnectGuard> {
        // SAFETY: the port is started (the shim checks the layout against rte_eth_fp_ops,
        // which is set up at start) and stays open as long as the guard is used.
        let lock = unsafe { dpdk_sys::sluice_memif_disconnect_lock(id) };
        NonNull::new(lock).map(|l| DisconnectGuard(l.cast()))
    }

    /// Runs `burst` with the lock held.
    #[inline]
    fn hold<T>(self, burst: impl FnOnce() -> T) -> T {
        // SAFETY: the pointer is to a live, aligned rte_spinlock_t (an int) that other threads
        // change only atomically (DPDK's lock is an xchg and a release store).
        let locked = unsafe { self.0.as_ref() };
        while locked
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while locked.load(Ordering::Relaxed) != 0 {
                std::hint::spin_loop();
            }
        }
        let result = burst();
        locked.store(0, Ordering::Release);
        result
    }
}

/// One RX queue of a started port, polled by the one worker that owns it.
pub struct RxQueue {
    port: Port,
    queue: u16,
    guard: Option<DisconnectGuard>,
    // Cell makes the type !Sync: two threads must never poll one DPDK queue.
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    pub fn port_id(&self) -> u16 {
        self.port.id()
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// The pool the queue fills from.
    pub fn pool(&self) -> &Mempool {
        &self.port.inner._pool
    }

    /// Receives into the spare room of `burst`; returns how many packets arrived.
    #[inline]
    pub fn recv(&mut self, burst: &mut Burst) -> usize {
        self.recv_up_to(burst, crate::MAX_BURST)
    }

    /// Receives at most `max` packets into the spare room of `burst`.
    #[inline]
    pub fn recv_up_to(&mut self, burst: &mut Burst, max: usize) -> usize {
        let (slots, spare) = burst.spare_raw();
        let spare = spare.min(max) as u16;
        let (port, queue) = (self.port.id(), self.queue);
        // SAFETY: this queue is set up and owned by this thread alone (&mut self, !Sync);
        // slots has room for `spare` pointers.
        let receive = || unsafe { dpdk_sys::eth_rx_burst(port, queue, slots, spare) };
        let n = match self.guard {
            None => receive(),
            Some(guard) => guard.hold(receive),
        } as usize;
        // SAFETY: the PMD wrote n owned mbufs into the spare slots.
        unsafe { burst.assume_filled(n) };
        n
    }
}

/// One TX queue of a started port, fed by the one worker that owns it.
pub struct TxQueue {
    port: Port,
    queue: u16,
    guard: Option<DisconnectGuard>,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    pub fn port_id(&self) -> u16 {
        self.port.id()
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Hands as many of `burst`'s mbufs to the device as it takes, from the front; those
    /// leave the burst, the rest stay for a retry or a counted drop. Returns how many went.
    #[inline]
    pub fn send(&mut self, burst: &mut Burst) -> usize {
        if burst.is_empty() {
            return 0;
        }
        let (len, packets) = (burst.len() as u16, burst.live_raw());
        let (port, queue) = (self.port.id(), self.queue);
        // SAFETY: the queue is set up and ours alone; the burst's first len slots are owned
        // mbufs, and the PMD takes ownership of the first n it accepts.
        let transmit = || unsafe { dpdk_sys::eth_tx_burst(port, queue, packets, len) };
        let n = match self.guard {
            None => transmit(),
            Some(guard) => guard.hold(transmit),
        } as usize;
        // SAFETY: the first n mbufs now belong to the device.
        unsafe { burst.forget_front(n) };
        n
    }

    /// Sends the burst, trying again up to `retries` times while the device takes only part
    /// of it. What is still in `burst` afterwards did not fit: the caller drops and counts it.
    #[inline]
    pub fn send_bounded(&mut self, burst: &mut Burst, retries: u32) -> usize {
        let mut sent = self.send(burst);
        let mut tries = 0;
        while !burst.is_empty() && tries < retries {
            sent += self.send(burst);
            tries += 1;
        }
        sent
    }
}
