//! IPMI over LAN from this machine, as an operator runs it: `ipmitool -I
//! lanplus … chassis power status|on|off` against one BMC, bounded in time
//! ([`crate::preflight::CHECK_TIMEOUT`]). The password reaches ipmitool as
//! a file (`-f`), never on a command line. Used by the preflight (status)
//! and by the lab runner (a crash is `off`, a repair is `on`).

use crate::inventory::Bmc;
use std::process::Command;

/// What to ask a BMC for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerVerb {
    Status,
    On,
    Off,
}

impl PowerVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerVerb::Status => "status",
            PowerVerb::On => "on",
            PowerVerb::Off => "off",
        }
    }
}

/// `chassis power VERB` to `bmc`: ipmitool's answer (`Chassis Power is
/// on`, `Chassis Power Control: Up/On`), or why not (named by address).
pub fn chassis_power(bmc: &Bmc, verb: PowerVerb) -> Result<String, String> {
    let mut c = Command::new("ipmitool");
    // Two tries of 2 s each: a BMC busy for a moment still answers; a dark
    // one costs seconds, not the check's whole bound.
    c.args(["-I", "lanplus", "-N", "2", "-R", "2", "-H"])
        .arg(bmc.address.to_string())
        .args(["-p", &bmc.port.to_string(), "-U", &bmc.username, "-f"])
        .arg(&bmc.password_file)
        .args(["chassis", "power", verb.as_str()]);
    let at = format!("{}:{}", bmc.address, bmc.port);
    let text = crate::preflight::bounded(c, None).map_err(|e| format!("{at}: {e}"))?;
    let answered = match verb {
        PowerVerb::Status => text.contains("Chassis Power is"),
        PowerVerb::On | PowerVerb::Off => text.contains("Chassis Power Control"),
    };
    if answered {
        Ok(text.trim().to_string())
    } else {
        Err(format!(
            "{at} answered `{}` to power {}",
            text.trim(),
            verb.as_str()
        ))
    }
}
