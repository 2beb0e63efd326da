//! The one rule for the names of a host's network links as operators
//! write them (bond members, bridges, underlays, VLAN sub-interfaces such
//! as `bond0.100`), checked before a name reaches netlink, nftables, a
//! command line or a file path.
//!
//! Linux allows almost any 1–15 bytes (IFNAMSIZ − 1) but `/`, `:` and
//! whitespace; this rule keeps the names real hosts use — letters of either
//! case, digits, `.`, `_`, `-` — and refuses a leading `-` (an option) or
//! `.` (`.`, `..`, hidden files), so a name can carry no path, option,
//! quote or markup anywhere.

/// At most this many bytes (the kernel's IFNAMSIZ − 1).
pub const LINK_NAME_MAX: usize = 15;

/// What [`check_link_name`] accepts, in words (for error messages).
pub const LINK_NAME_RULE: &str =
    "a link name: 1 to 15 of a-z, A-Z, 0-9, '.', '_' and '-', not starting with '-' or '.'";

/// Ok if `name` is a link name by the rule above; else why not.
pub fn check_link_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > LINK_NAME_MAX {
        return Err("longer than 15 bytes");
    }
    if name.starts_with(['-', '.']) {
        return Err("starts with '-' or '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only a-z, A-Z, 0-9, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_real_hosts_use_pass() {
        for ok in [
            "eno1",
            "bond0.100",
            "enp3s0f1",
            "br-vm",
            "vlan_200",
            "Eth0",
            "abcdefghijklmno",
        ] {
            assert_eq!(check_link_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_that_could_carry_a_path_an_option_or_markup_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "a:1",
            "a\"b",
            "a;b",
            "a\nb",
            "abcdefghijklmnop",
            "é",
        ] {
            assert!(check_link_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
