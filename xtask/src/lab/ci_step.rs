//! `cargo xtask ci`'s lab step: lab up, the real-guest tests, the lab
//! scenarios CI runs in the box and through `--inventory` on the box's
//! standing hosts, lab down.

use super::*;

/// The `scenarios/lab/` files `cargo xtask ci` runs against real guests
/// in the box: with [`INVENTORY_CI_SCENARIOS`] (a crash with its real
/// RTO, the cold failback, the 5 s management cut, snapshot and revert on
/// real disks, run through `--inventory`), every item of the lab's list:
/// VXLAN ping between two hosts' guests, EIP NAT, volume attach and
/// detach (all three across a failover), the live failback between the
/// box's two libvirt daemons; plus fencing by lease and a storage cut.
/// The others take as long again; they run in every simulated world in
/// CI, and in the lab nightly (`cargo xtask nightly`) — in CI they are
/// reported NOT RUN. (`vxnets-of-one-router`, routing between vxnets,
/// left this list for the live failback to keep the suite near 30 min;
/// the kernel's side of it is in krrish-libvirt's NAT kernel tests.)
pub const CI_SCENARIOS: &[&str] = &[
    "network-and-volume-follow-a-failover",
    "power-loss-fenced-by-lease",
    "storage-cut-restarts-on-spare",
    "repair-fails-back-live",
];

/// `cargo xtask ci`'s lab step: lab up, the real-guest tests, the lab
/// scenarios (`only` these of `scenarios/lab/`, or all), lab down — down
/// also when up or the tests failed.
pub fn suite_step(only: Option<&[&str]>) -> Result<bool> {
    let mut files = Vec::new();
    let mut not_run = Vec::new();
    let mut all: Vec<String> = std::fs::read_dir("scenarios/lab")
        .context("reading scenarios/lab/")?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| n.strip_suffix(".yaml").map(str::to_string))
        .collect();
    all.sort();
    for name in all {
        if only.is_none_or(|o| o.contains(&name.as_str())) {
            files.push(format!("scenarios/lab/{name}.yaml"));
        } else {
            not_run.push(name);
        }
    }
    if let Some(o) = only {
        if let Some(gone) = o.iter().find(|n| !files.iter().any(|f| f.contains(*n))) {
            bail!("lab scenario {gone} (xtask's CI_SCENARIOS) is not in scenarios/lab/");
        }
    }
    let result = up().and_then(|()| {
        // The suite's own feature set plus the lab tests': only
        // krrish-libvirt and its `lab` test are built again.
        let tests = crate::failures::run_keeping(
            "cargo test (lab)",
            crate::cargo().args(crate::SUITE_TEST_ARGS).args([
                "--features",
                "krrish-libvirt/lab",
                "--test",
                "lab",
            ]),
        )?;
        let mut args = vec!["--world".to_string(), "lab".to_string()];
        args.extend(files);
        let scenarios = crate::suite_scenario(&args)?;
        let on_inventory = inventory_step()?;
        Ok(tests && scenarios && on_inventory)
    });
    if !not_run.is_empty() {
        eprintln!(
            "xtask: NOT RUN in the lab here ({} of scenarios/lab/, nightly only; \
             they ran in the simulated worlds): {}",
            not_run.len(),
            not_run.join(", ")
        );
    }
    let cleaned = down();
    let passed = result?;
    cleaned?;
    Ok(passed)
}

/// The `scenarios/lab/` files `cargo xtask ci` also runs through
/// `--inventory`, on the box's hosts left standing and described as an
/// inventory (`krrish lab-hosts up`): a crash by IPMI with its RTO, a
/// repair and failback, a cut by the inventory's switch-side commands.
pub const INVENTORY_CI_SCENARIOS: &[&str] = &[
    "crash-fails-over",
    "repair-fails-back-cold",
    "mgmt-cut-5s-nothing-happens",
    // A guest's writes, disk reads and snapshot through each host's `run`
    // (`krrish lab-guest-ask` there, qemu-io on the DFS).
    "snapshot-revert",
];

/// The inventory runner on the box's standing hosts; they are removed
/// again whatever happened.
fn inventory_step() -> Result<bool> {
    let krrish = Path::new("target").join("debug").join("krrish");
    let up = Command::new(&krrish)
        .args([
            "lab-hosts",
            "up",
            "--cluster",
            "fixtures/clusters/lab-3.yaml",
        ])
        .status()
        .context("running krrish lab-hosts up")?;
    let result = if up.success() {
        let mut args: Vec<String> = [
            "--world",
            "lab",
            "--inventory",
            "target/lab/inventory-hosts/inventory.yaml",
        ]
        .map(String::from)
        .to_vec();
        args.extend(
            INVENTORY_CI_SCENARIOS
                .iter()
                .map(|n| format!("scenarios/lab/{n}.yaml")),
        );
        crate::suite_scenario(&args)
    } else {
        eprintln!("xtask: krrish lab-hosts up failed: the inventory scenarios did not run");
        Ok(false)
    };
    let down = Command::new(&krrish)
        .args(["lab-hosts", "down"])
        .status()
        .context("running krrish lab-hosts down")?;
    if !down.success() {
        eprintln!("xtask: krrish lab-hosts down failed (`cargo xtask lab down` follows)");
    }
    result
}
