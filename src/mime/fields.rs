//! Header fields to owned values: message ids, the date (raw and as UTC),
//! and the address lists, groups flattened. Pure.

use mail_parser::{Address as MpAddress, HeaderName, HeaderValue, Message};

use super::{Address, AddressRole};

pub(super) fn strip_brackets(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

pub(super) fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![strip_brackets(id)],
        HeaderValue::TextList(ids) => ids.iter().map(|id| strip_brackets(id)).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn date(message: &Message<'_>) -> (Option<String>, Option<String>) {
    let raw = message
        .header_raw(HeaderName::Date)
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let sent_at = message
        .date()
        .filter(|d| d.is_valid())
        .map(|d| crate::utc::format_utc(d.to_timestamp()));
    (raw, sent_at)
}

pub(super) fn addresses(message: &Message<'_>) -> Vec<Address> {
    let mut out = Vec::new();
    for role in AddressRole::ALL {
        let mut position = 0u32;
        for value in message.header_values(role.header()) {
            let HeaderValue::Address(list) = value else {
                continue;
            };
            let mut push = |name: Option<&str>, address: Option<&str>| {
                let mut name = name.map(str::trim).filter(|s| !s.is_empty());
                let mut address = address.map(str::trim).filter(|s| !s.is_empty());
                // `To: baz` is a bare local part (old local mail, RFC 822 without a domain);
                // mail-parser reads the lone word as a display name, but it names a mailbox.
                if address.is_none()
                    && name.is_some_and(|n| !n.contains(char::is_whitespace) && !n.contains('"'))
                {
                    (name, address) = (None, name);
                }
                if name.is_none() && address.is_none() {
                    return;
                }
                out.push(Address {
                    role,
                    position,
                    name: name.map(str::to_owned),
                    address: address.map(str::to_owned),
                });
                position += 1;
            };
            match list {
                MpAddress::List(addrs) => {
                    for a in addrs {
                        push(a.name(), a.address());
                    }
                }
                MpAddress::Group(groups) => {
                    for a in groups.iter().flat_map(|g| g.addresses.iter()) {
                        push(a.name(), a.address());
                    }
                }
            }
        }
    }
    out
}
