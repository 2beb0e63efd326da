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

/// Tries of one call. A BMC's LAN session now and then fails to close
/// under load (ipmitool: "Close Session command failed", seen once in CI
/// from the lab's emulated BMCs) though the BMC may have acted; the verbs
/// are idempotent (off when off is off), so asking again is safe, as
/// fence_ipmilan's retries do.
const TRIES: usize = 3;

/// `chassis power VERB` to `bmc`: ipmitool's answer (`Chassis Power is
/// on`, `Chassis Power Control: Up/On`), or why not (named by address,
/// after [`TRIES`] tries).
pub fn chassis_power(bmc: &Bmc, verb: PowerVerb) -> Result<String, String> {
    let mut last = String::new();
    for i in 0..TRIES {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        match chassis_power_once(bmc, verb) {
            Ok(said) => return Ok(said),
            Err(e) => last = e,
        }
    }
    Err(format!("{last} ({TRIES} tries)"))
}

fn chassis_power_once(bmc: &Bmc, verb: PowerVerb) -> Result<String, String> {
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
