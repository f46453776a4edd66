//! ICMPv4 (RFC 792): echo request and reply.

use super::checksum;
use super::Truncated;

mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
}

/// Length of the fixed part (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

pub const ECHO_REPLY: u8 = 0;
pub const ECHO_REQUEST: u8 = 8;
pub const DESTINATION_UNREACHABLE: u8 = 3;
pub const TIME_EXCEEDED: u8 = 11;

/// A view of an ICMP message at the start of `buffer`.
#[derive(Clone, Copy, Debug)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    pub fn new_checked(buffer: T) -> Result<Message<T>, Truncated> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(Message { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Whether the whole message sums to zero.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    /// Turns an echo request into its reply in place: the type changes, identifier, sequence
    /// and data stay, and the checksum is computed afresh. (An incremental update gives 0x0000
    /// for a reply whose other words are all zero, where the right checksum is 0xffff: the
    /// fuzzer found that ping, identifier 0, sequence 0, no data.)
    pub fn make_echo_reply(&mut self) {
        let b = self.buffer.as_mut();
        b[field::TYPE] = ECHO_REPLY;
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let csum = checksum::internet(b);
        b[field::CHECKSUM].copy_from_slice(&csum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_becomes_a_valid_reply() {
        let mut msg = [ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let csum = checksum::internet(&msg);
        msg[2..4].copy_from_slice(&csum.to_be_bytes());
        let mut m = Message::new_checked(&mut msg[..]).unwrap();
        assert!(m.verify_checksum());
        m.make_echo_reply();
        assert_eq!((m.msg_type(), m.code()), (ECHO_REPLY, 0));
        assert!(m.verify_checksum());
        assert_eq!(&msg[4..], &[0x12, 0x34, 0, 1, b'h', b'i']);
        assert_eq!(Message::new_checked(&[0u8; 7][..]).err(), Some(Truncated));
    }

    #[test]
    fn a_reply_whose_other_words_are_zero_still_verifies() {
        let mut msg = [ECHO_REQUEST, 0, 0xf7, 0xff, 0, 0, 0, 0];
        let mut m = Message::new_checked(&mut msg[..]).unwrap();
        assert!(m.verify_checksum());
        m.make_echo_reply();
        assert!(m.verify_checksum());
        assert_eq!(msg, [ECHO_REPLY, 0, 0xff, 0xff, 0, 0, 0, 0]);
    }
}
