//! pcap replay: the frames of a file, in order, looped, at the file's timing or paced.

use pcap_file::pcap::PcapReader;
use std::io::Read;
use std::path::Path;

/// The frames of a pcap file, held in memory.
pub struct Replay {
    frames: Vec<Vec<u8>>,
    /// Each frame's time from the first, in nanoseconds.
    offsets_ns: Vec<u64>,
    /// One pass of the file, first frame to last, plus the mean gap (so loops keep pace).
    pass_ns: u64,
    /// Passes to send (0: until stopped).
    loops: u64,
    next: usize,
    pass: u64,
}

impl Replay {
    pub fn load(path: &Path, loops: u64, max_len: usize) -> Result<Replay, String> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| format!("{name}: cannot open the pcap file: {e}"))?;
        Replay::read(file, &name, loops, max_len)
    }

    /// The frames of the pcap file `input` (`name` names it in errors): each 14 to
    /// `max_len` bytes, at least one.
    pub fn read(
        input: impl Read,
        name: &str,
        loops: u64,
        max_len: usize,
    ) -> Result<Replay, String> {
        let mut reader =
            PcapReader::new(input).map_err(|e| format!("{name}: not a readable pcap file: {e}"))?;
        let (mut frames, mut offsets_ns) = (Vec::new(), Vec::new());
        let mut first = None;
        while let Some(packet) = reader.next_packet() {
            let packet = packet.map_err(|e| format!("{name}: frame {}: {e}", frames.len() + 1))?;
            if packet.data.len() > max_len || packet.data.len() < 14 {
                return Err(format!(
                    "{name}: frame {} is {} bytes: frames of 14 to {max_len} bytes can be sent",
                    frames.len() + 1,
                    packet.data.len()
                ));
            }
            let t = packet.timestamp.as_nanos() as u64;
            let t0 = *first.get_or_insert(t);
            offsets_ns.push(t.saturating_sub(t0));
            frames.push(packet.data.into_owned());
        }
        if frames.is_empty() {
            return Err(format!("{name}: the pcap file holds no frames"));
        }
        let last = *offsets_ns.last().expect("not empty");
        let gap = last / (frames.len() as u64 - 1).max(1);
        Ok(Replay {
            frames,
            offsets_ns,
            pass_ns: last + gap,
            loops,
            next: 0,
            pass: 0,
        })
    }

    pub fn mean_frame(&self) -> f64 {
        self.frames
            .iter()
            .map(|f| f.len() as f64 + 4.0)
            .sum::<f64>()
            / self.frames.len() as f64
    }

    /// Whether every pass has been sent.
    pub fn done(&self) -> bool {
        self.loops != 0 && self.pass >= self.loops
    }

    /// When the next frame is due by the file's timing, in ns from the start of sending.
    pub fn next_due_ns(&self) -> u64 {
        self.pass * self.pass_ns + self.offsets_ns[self.next]
    }

    /// The next frame, moving on.
    pub fn take(&mut self) -> &[u8] {
        let at = self.next;
        self.next += 1;
        if self.next == self.frames.len() {
            self.next = 0;
            self.pass += 1;
        }
        &self.frames[at]
    }
}
