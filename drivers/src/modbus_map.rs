//! The Modbus TCP register map of docs/protocol.md: addresses, and the decoding of a device's
//! swipe registers (and their encoding, for simulated devices and tests).

/// Input registers 0..=12 hold the swipe: read them in one request.
pub const SWIPE_REGISTERS: u16 = 13;
pub const IR_SEQUENCE: u16 = 0;
pub const DI_DOOR_OPEN: u16 = 0;
pub const DI_REX: u16 = 1;
pub const DI_TAMPER: u16 = 2;
/// Discrete inputs 0..=2, read every poll.
pub const DISCRETE_INPUTS: u16 = 3;
pub const COIL_LOCK_RELAY: u16 = 0;
pub const HR_LED: u16 = 0;
pub const HR_BEEPER: u16 = 1;

/// Holding register 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Led {
    Off = 0,
    Red = 1,
    Green = 2,
    Amber = 3,
}

/// Holding register 1; the device clears it after playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Beeper {
    Silent = 0,
    Grant = 1,
    Deny = 2,
    PinNeeded = 3,
}

/// What a device's swipe registers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwipeRegisters {
    /// Adds 1 (wrapping) with each new swipe.
    pub sequence: u16,
    /// The card UID as upper-case hex.
    pub uid: String,
    pub pin: Option<String>,
}

/// Why a device's registers cannot be a swipe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("expected {SWIPE_REGISTERS} input registers, got {0}")]
    Count(usize),
    #[error("credential length {0} is over 16 bytes")]
    CredentialLength(u16),
    #[error("an empty credential")]
    EmptyCredential,
    #[error("PIN digit count {0} is over 12")]
    PinDigits(u16),
    #[error("PIN value {value} does not fit in {digits} digits")]
    PinValue { value: u32, digits: u16 },
}

/// Decodes input registers 0..=12. Garbage from a device is an error, never a panic.
pub fn decode_swipe(registers: &[u16]) -> Result<SwipeRegisters, RegisterError> {
    if registers.len() != usize::from(SWIPE_REGISTERS) {
        return Err(RegisterError::Count(registers.len()));
    }
    let sequence = registers[0];
    let length = registers[1];
    if length > 16 {
        return Err(RegisterError::CredentialLength(length));
    }
    if length == 0 {
        return Err(RegisterError::EmptyCredential);
    }
    let bytes: Vec<u8> = registers[2..10]
        .iter()
        .flat_map(|r| r.to_be_bytes())
        .take(usize::from(length))
        .collect();
    let uid = hex::encode_upper(bytes);
    let digits = registers[10];
    let value = (u32::from(registers[11]) << 16) | u32::from(registers[12]);
    let pin = match digits {
        0 => None,
        1..=12 => {
            let text = format!("{value:0width$}", width = usize::from(digits));
            if text.len() > usize::from(digits) {
                return Err(RegisterError::PinValue { value, digits });
            }
            Some(text)
        }
        more => return Err(RegisterError::PinDigits(more)),
    };
    Ok(SwipeRegisters { sequence, uid, pin })
}

/// Encodes a swipe as a device presents it (simulated devices, tests). Returns None for a
/// UID that is not 1 to 16 bytes of hex or a PIN that is not 1 to 9 digits (a u32 holds 9).
pub fn encode_swipe(sequence: u16, uid_hex: &str, pin: Option<&str>) -> Option<[u16; 13]> {
    let bytes = hex::decode(uid_hex).ok()?;
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let mut regs = [0u16; 13];
    regs[0] = sequence;
    regs[1] = u16::try_from(bytes.len()).ok()?;
    for (i, chunk) in bytes.chunks(2).enumerate() {
        let hi = chunk[0];
        let lo = chunk.get(1).copied().unwrap_or(0);
        regs[2 + i] = u16::from_be_bytes([hi, lo]);
    }
    if let Some(pin) = pin {
        if pin.is_empty() || pin.len() > 9 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u32 = pin.parse().ok()?;
        regs[10] = u16::try_from(pin.len()).ok()?;
        regs[11] = (value >> 16) as u16;
        regs[12] = (value & 0xFFFF) as u16;
    }
    Some(regs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swipe_registers_round_trip() {
        let regs = encode_swipe(41, "04A1B2C3D4E5F6", Some("0482")).unwrap();
        assert_eq!(regs[1], 7);
        assert_eq!(regs[2], 0x04A1);
        assert_eq!(regs[5], 0xF600, "odd lengths are zero-padded");
        let swipe = decode_swipe(&regs).unwrap();
        assert_eq!(swipe.sequence, 41);
        assert_eq!(swipe.uid, "04A1B2C3D4E5F6");
        assert_eq!(swipe.pin.as_deref(), Some("0482"), "leading zeros survive");
        let no_pin = decode_swipe(&encode_swipe(0, "DEADBEEF", None).unwrap()).unwrap();
        assert_eq!(no_pin.pin, None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(decode_swipe(&[1, 2, 3]), Err(RegisterError::Count(3)));
        let mut regs = encode_swipe(1, "04A1", None).unwrap();
        regs[1] = 40;
        assert_eq!(
            decode_swipe(&regs),
            Err(RegisterError::CredentialLength(40))
        );
        regs[1] = 0;
        assert_eq!(decode_swipe(&regs), Err(RegisterError::EmptyCredential));
        let mut regs = encode_swipe(1, "04A1", Some("12")).unwrap();
        regs[12] = 999;
        assert!(matches!(
            decode_swipe(&regs),
            Err(RegisterError::PinValue { .. })
        ));
        regs[10] = 13;
        assert_eq!(decode_swipe(&regs), Err(RegisterError::PinDigits(13)));
        for junk in [[0xFFFFu16; 13], [0u16; 13]] {
            let _ = decode_swipe(&junk);
        }
    }
}
