//! IEEE 802.1Q VLAN tags: the four bytes after the source MAC when the EtherType is 0x8100.

use super::ethernet::EtherType;
use super::Truncated;

/// Length of one tag (TCI and the inner EtherType).
pub const TAG_LEN: usize = 4;

/// A view of the tag at the start of `buffer` (an Ethernet frame's payload).
#[derive(Clone, Copy, Debug)]
pub struct Tag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tag<T> {
    pub fn new_checked(buffer: T) -> Result<Tag<T>, Truncated> {
        if buffer.as_ref().len() < TAG_LEN {
            return Err(Truncated);
        }
        Ok(Tag { buffer })
    }

    /// Priority code point (3 bits).
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[0] >> 5
    }

    /// VLAN identifier (12 bits).
    pub fn vlan_id(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[0], b[1]]) & 0x0fff
    }

    /// The EtherType of what the tag carries.
    pub fn ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tci_and_inner_type() {
        let tag = Tag::new_checked([0xa0, 0x64, 0x08, 0x00]).unwrap();
        assert_eq!(tag.priority(), 5);
        assert_eq!(tag.vlan_id(), 100);
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        assert_eq!(Tag::new_checked([0u8; 3]).err(), Some(Truncated));
    }
}
