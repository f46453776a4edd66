//! An app's ports: started with their queues, fed from pools placed on the ports' NUMA nodes,
//! and closed at the end with every mbuf counted back.

use crate::eal::Eal;
use crate::error::Error;
use crate::mbuf::MAX_BURST;
use crate::mempool::{Mempool, DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use crate::net::ethernet::Address;
use crate::port::{self, Port, PortConfig, PortInfo, RxQueue, TxQueue};
use crate::stats::MbufUse;

/// One port to start, with how many queues of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPlan {
    pub id: u16,
    pub rx_queues: u16,
    pub tx_queues: u16,
}

impl PortPlan {
    /// One RX and one TX queue.
    pub fn new(id: u16) -> PortPlan {
        PortPlan {
            id,
            rx_queues: 1,
            tx_queues: 1,
        }
    }
}

/// Which ports share an mbuf pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pools {
    /// One pool per NUMA node, on that node: packets stay in their port's memory (the
    /// default). A port of no known node (a virtual device) uses the main lcore's.
    PerNode,
    /// One pool for all ports, on the main lcore's node (l3fwd's `--no-numa`).
    One,
    /// A pool per port, on its node (l3fwd's `--per-port-pool`).
    PerPort,
}

/// How every port is set up.
#[derive(Clone, Debug)]
pub struct PortSetup {
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub promiscuous: bool,
    /// The largest IP packet to receive and send (None: the device's default).
    pub mtu: Option<u16>,
    pub pools: Pools,
    /// Packets the app may hold at once (delayed, waiting for a neighbour), beyond what the
    /// queues and caches need: each pool grows by that many.
    pub held: u32,
}

impl Default for PortSetup {
    fn default() -> Self {
        PortSetup {
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            promiscuous: false,
            mtu: None,
            pools: Pools::PerNode,
            held: 0,
        }
    }
}

struct Started {
    port: Port,
    info: PortInfo,
    mac: Address,
    rx: Vec<Option<RxQueue>>,
    tx: Vec<Option<TxQueue>>,
}

/// Started ports, whose queues the app takes for its lanes.
pub struct Ports {
    started: Vec<Started>,
    pools: Vec<(u32, Mempool)>,
}

impl Ports {
    /// Starts every port of `plans` (RSS over its RX queues when it has several), with pools
    /// sized for their descriptors and the lcores' caches.
    pub fn start(eal: &Eal, plans: &[PortPlan], setup: &PortSetup) -> Result<Ports, Error> {
        let present = eal.port_ids();
        let mut infos = Vec::new();
        for plan in plans {
            if !present.contains(&plan.id) {
                return Err(Error::Config(format!(
                    "port {} does not exist: the EAL found {}; add a --vdev or -a",
                    plan.id,
                    super::options::describe_ports(&present)
                )));
            }
            infos.push(port::info(plan.id)?);
        }
        let main_node = eal.lcore_socket(eal.main_lcore());
        let nodes: Vec<u32> = infos
            .iter()
            .map(|info: &PortInfo| match setup.pools {
                Pools::One => main_node,
                Pools::PerNode | Pools::PerPort => info.socket.unwrap_or(main_node),
            })
            .collect();
        let keys: Vec<u32> = (0..plans.len())
            .map(|i| match setup.pools {
                Pools::PerNode => nodes[i],
                Pools::One => 0,
                Pools::PerPort => u32::from(plans[i].id),
            })
            .collect();
        let needs = |plan: &PortPlan| {
            u32::from(plan.rx_queues) * u32::from(setup.rx_descriptors)
                + u32::from(plan.tx_queues) * (u32::from(setup.tx_descriptors) + MAX_BURST as u32)
        };
        let mut pools: Vec<(u32, Mempool)> = Vec::new();
        for (&key, &node) in keys.iter().zip(&nodes) {
            if pools.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let sharing: u32 = plans
                .iter()
                .zip(&keys)
                .filter(|(_, k)| **k == key)
                .map(|(plan, _)| needs(plan))
                .sum();
            let count =
                (sharing + eal.lcores().len() as u32 * DEFAULT_CACHE).max(8192) + setup.held;
            let name = match setup.pools {
                Pools::PerNode => format!("pool_node{key}"),
                Pools::One => "pool".to_owned(),
                Pools::PerPort => format!("pool_port{key}"),
            };
            let pool = Mempool::pktmbuf(
                eal,
                &name,
                count,
                DEFAULT_CACHE,
                DEFAULT_DATA_ROOM,
                Some(node),
            )?;
            pools.push((key, pool));
        }
        let mut started = Vec::new();
        for (i, (plan, info)) in plans.iter().zip(infos).enumerate() {
            let config = PortConfig {
                rx_queues: plan.rx_queues,
                tx_queues: plan.tx_queues,
                rx_descriptors: setup.rx_descriptors,
                tx_descriptors: setup.tx_descriptors,
                promiscuous: setup.promiscuous,
                rss: (plan.rx_queues > 1).then(Default::default),
                mtu: setup.mtu,
            };
            let pool = &pools.iter().find(|(k, _)| *k == keys[i]).expect("pool").1;
            let (port, rx, tx) = Port::start(eal, plan.id, &config, pool)?;
            let mac = port.mac()?;
            started.push(Started {
                port,
                info,
                mac,
                rx: rx.into_iter().map(Some).collect(),
                tx: tx.into_iter().map(Some).collect(),
            });
        }
        Ok(Ports { started, pools })
    }

    fn get(&self, id: u16) -> Result<&Started, Error> {
        self.started
            .iter()
            .find(|s| s.port.id() == id)
            .ok_or_else(|| Error::Config(format!("port {id} was not started")))
    }

    fn get_mut(&mut self, id: u16) -> Result<&mut Started, Error> {
        self.started
            .iter_mut()
            .find(|s| s.port.id() == id)
            .ok_or_else(|| Error::Config(format!("port {id} was not started")))
    }

    /// The started ports' ids, in the order of the plans.
    pub fn ids(&self) -> Vec<u16> {
        self.started.iter().map(|s| s.port.id()).collect()
    }

    pub fn port(&self, id: u16) -> Result<&Port, Error> {
        Ok(&self.get(id)?.port)
    }

    pub fn info(&self, id: u16) -> Result<&PortInfo, Error> {
        Ok(&self.get(id)?.info)
    }

    pub fn mac(&self, id: u16) -> Result<Address, Error> {
        Ok(self.get(id)?.mac)
    }

    /// Takes RX queue `queue` of port `id` for a lane (each queue goes to one).
    pub fn rx(&mut self, id: u16, queue: u16) -> Result<RxQueue, Error> {
        self.get_mut(id)?
            .rx
            .get_mut(usize::from(queue))
            .and_then(Option::take)
            .ok_or_else(|| Error::Config(format!("RX queue {queue} of port {id} is not free")))
    }

    /// Takes TX queue `queue` of port `id` for a lane.
    pub fn tx(&mut self, id: u16, queue: u16) -> Result<TxQueue, Error> {
        self.get_mut(id)?
            .tx
            .get_mut(usize::from(queue))
            .and_then(Option::take)
            .ok_or_else(|| Error::Config(format!("TX queue {queue} of port {id} is not free")))
    }

    /// `port 0: net_pcap, MAC 02:..., 1 RX / 1 TX queues, link up at 10000 Mbps` and the
    /// app's `extra`, and on a second line what the device made of the RSS asked of it, if it
    /// said something.
    pub fn describe(&self, id: u16, extra: &str) -> Result<String, Error> {
        let s = self.get(id)?;
        let link = s.port.link()?;
        let mut text = format!(
            "port {id}: {}, MAC {}, {} RX / {} TX queues, link {}",
            s.info.driver,
            s.mac,
            s.rx.len(),
            s.tx.len(),
            if link.up {
                format!("up at {} Mbps", link.speed_mbps)
            } else {
                "down".to_owned()
            }
        );
        text.push_str(extra);
        if let Some(note) = s.port.rss().and_then(|r| r.note.as_deref()) {
            text.push_str("\n  ");
            text.push_str(note);
        }
        Ok(text)
    }

    /// The pools, one per key of [`Pools`].
    pub fn pools(&self) -> Vec<Mempool> {
        self.pools.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Stops and closes the ports (their queues went with the lanes; closing frees the mbufs
    /// the devices held) and counts the mbufs still out of the pools.
    pub fn close(self) -> MbufUse {
        let Ports { started, pools } = self;
        drop(started);
        MbufUse {
            in_use: pools.iter().map(|(_, p)| p.in_use()).sum(),
            capacity: pools.iter().map(|(_, p)| p.capacity()).sum(),
        }
    }
}
