//! A folder as mailfeed names it twice: its wire name (modified UTF-7, what
//! commands carry and the store keys on) and its readable name (what logs,
//! health, progress and configuration use). Decoded once, where folders are
//! listed or resolved; everything after passes the pair.

use std::fmt;

use super::mutf7;

/// A folder's wire name and its readable name, decoded once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Folder {
    wire: String,
    name: String,
}

impl Folder {
    /// The folder a server names `wire`; a wire name that is not valid
    /// modified UTF-7 reads as it was sent (see [`mutf7::decode`]).
    pub fn from_wire(wire: impl Into<String>) -> Folder {
        let wire = wire.into();
        let name = mutf7::decode(&wire);
        Folder { wire, name }
    }

    /// The name for commands and the store (modified UTF-7).
    pub fn wire(&self) -> &str {
        &self.wire
    }

    /// The readable name, as configured and logged.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Shows the readable name.
impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::Folder;

    #[test]
    fn non_ascii_name_is_decoded_once_and_the_wire_kept() {
        let f = Folder::from_wire("INBOX/Entw&APw-rfe");
        assert_eq!(f.wire(), "INBOX/Entw&APw-rfe");
        assert_eq!(f.name(), "INBOX/Entwürfe");
        assert_eq!(f.to_string(), "INBOX/Entwürfe");
        assert_eq!(crate::imap::mutf7::encode(f.name()), f.wire());
    }

    #[test]
    fn invalid_modified_utf7_reads_as_sent() {
        for wire in ["Bad&name", "Bad&!!-x", "Entwürfe"] {
            let f = Folder::from_wire(wire);
            assert_eq!(f.wire(), wire);
            assert_eq!(f.name(), wire);
            assert_eq!(f.to_string(), wire);
        }
    }
}
