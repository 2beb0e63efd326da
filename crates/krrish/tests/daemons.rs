//! The daemons as an operator runs them: the real `krrish` binary as a
//! controller and three agents on loopback, a host crash (SIGKILL of its
//! agent), fencing through a real fence script, failover to the spare, a
//! clean stop and a restart from the store. Plus start-up errors.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every wait for a log line is bounded by this (real time, generous for a
/// loaded 2-core machine; the run takes a few seconds when healthy).
const WAIT: Duration = Duration::from_secs(30);
/// Lines kept per daemon; a runaway log fails the test instead of eating
/// memory.
const LINES_MAX: usize = 100_000;

type Lines = Arc<Mutex<Vec<String>>>;

/// Wall time: these are real processes on real sockets, nothing here is
/// replayed from a seed.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

struct Daemon {
    name: String,
    child: Child,
    lines: Lines,
}

/// Reads a pipe line by line into `lines` on its own thread, so the child
/// never blocks on a full pipe.
fn collect(pipe: impl Read + Send + 'static, lines: Lines, prefix: &'static str) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            let mut l = lines.lock().unwrap();
            if l.len() < LINES_MAX {
                l.push(format!("{prefix}{line}"));
            }
        }
    });
}

/// The test's processes and scratch directory; on drop (a failed assertion
/// included) every child is killed and reaped.
struct Cluster {
    dir: PathBuf,
    daemons: Vec<Daemon>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    fn new(name: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("daemons-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            dir,
            daemons: Vec::new(),
        }
    }

    fn write(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn start(&mut self, name: &str, args: &[&str]) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_krrish"))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let lines: Lines = Arc::default();
        collect(child.stdout.take().unwrap(), lines.clone(), "");
        collect(child.stderr.take().unwrap(), lines.clone(), "stderr: ");
        self.daemons.push(Daemon {
            name: name.to_string(),
            child,
            lines,
        });
    }

    /// The most recent daemon started under `name`.
    fn daemon(&mut self, name: &str) -> &mut Daemon {
        self.daemons
            .iter_mut()
            .rev()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no daemon {name}"))
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for d in &self.daemons {
            s.push_str(&format!("===== {} =====\n", d.name));
            for l in d.lines.lock().unwrap().iter() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// Waits until `name`'s log has a line containing every one of
    /// `needles`; returns that line.
    fn wait_for(&mut self, name: &str, needles: &[&str]) -> String {
        let deadline = now() + WAIT;
        loop {
            let found = {
                let d = self.daemon(name);
                let lines = d.lines.lock().unwrap();
                lines
                    .iter()
                    .find(|l| needles.iter().all(|n| l.contains(n)))
                    .cloned()
            };
            if let Some(l) = found {
                return l;
            }
            if now() > deadline {
                panic!(
                    "{name}: no line with {needles:?} within {WAIT:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (a `kill` name such as TERM) to `name`, through the
    /// shell's built-in `kill` (no procps needed, no unsafe libc call).
    fn signal(&mut self, name: &str, signal: &str) {
        let pid = self.daemon(name).child.id();
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {pid}")])
            .status()
            .expect("sh runs")
            .success();
        assert!(ok, "kill -{signal} {pid} failed");
    }

    /// Waits (bounded) for `name` to exit; its exit code.
    fn wait_exit(&mut self, name: &str) -> Option<i32> {
        let deadline = now() + WAIT;
        loop {
            if let Some(status) = self.daemon(name).child.try_wait().unwrap() {
                return status.code();
            }
            if now() > deadline {
                panic!("{name} did not exit within {WAIT:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A loopback port free a moment ago (the OS picks it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const CLUSTER: &str = "\
name: daemons-test
defaults: { vcpus: 16, memory_gib: 64, disk_gib: 500 }
hosts:
  - { name: hv-01, zone: ECS }
  - { name: hv-02, zone: ECS }
spares: 1
vms:
  - { name: vm-1, host: hv-01, vcpus: 2, memory_gib: 4, disk_gib: 20, ha: restart }
";

/// Kills the fenced host's agent through its pid file (the test's stand-in
/// for a BMC power-off) and records what it was asked.
const FENCE_SCRIPT: &str = "#!/bin/sh
echo \"$KRRISH_FENCE_HOST $KRRISH_FENCE_IPMI $KRRISH_FENCE_ACTION\" >> fenced.log
if [ -f \"agent-$KRRISH_FENCE_HOST.pid\" ]; then
    kill -KILL \"$(cat \"agent-$KRRISH_FENCE_HOST.pid\")\" 2>/dev/null || true
fi
exit 0
";

fn controller_config(port: u16) -> String {
    // Scaled down from the design's 6 s / 30 s, with generous grace and
    // ack time-outs: a loaded machine may stall a real-time loop.
    format!(
        "listen: 127.0.0.1:{port}
store: controller.redb
cluster_file: cluster.yaml
pid_file: controller.pid
timings:
  heartbeat_interval: 200ms
  heartbeat_misses: 3
  heartbeat_grace: 2s
  fence_timeout: 5s
  lease_duration: 3s
  lease_margin: 200ms
  boot_timeout: 5s
fencer:
  kind: command
  command: [./fence.sh]
  timeout: 4s
"
    )
}

fn agent_config(host: &str, port: u16) -> String {
    format!(
        "host: {host}
controller: 127.0.0.1:{port}
pid_file: agent-{host}.pid
timings:
  heartbeat_interval: 200ms
  lease_duration: 3s
  ack_timeout: 800ms
  connect_timeout: 500ms
driver:
  kind: sim
  cluster_file: cluster.yaml
  boot_time: 300ms
"
    )
}

/// A controller and the three agents, every agent connected, with
/// `fence_script` as the fence agent.
fn start_cluster(name: &str, fence_script: &str) -> Cluster {
    start_cluster_with(name, fence_script, "")
}

/// As [`start_cluster`], with `extra` appended to the controller's config.
fn start_cluster_with(name: &str, fence_script: &str, extra: &str) -> Cluster {
    let hosts = ["hv-01", "hv-02", "spare-1"];
    start_cluster_of(name, CLUSTER, &hosts, fence_script, extra)
}

/// As [`start_cluster_with`], from the cluster file `cluster` (named
/// daemons-test, its one VM vm-1 on hv-01) and an agent for each of
/// `hosts` (its spares included).
fn start_cluster_of(
    name: &str,
    cluster: &str,
    hosts: &[&str],
    fence_script: &str,
    extra: &str,
) -> Cluster {
    let mut c = Cluster::new(name);
    let port = free_port();
    c.write("cluster.yaml", cluster);
    let fence = c.write("fence.sh", fence_script);
    std::fs::set_permissions(&fence, std::fs::Permissions::from_mode(0o755)).unwrap();
    // For an `api` section in `extra`.
    c.write("api-token", &format!("{API_TOKEN}\n"));
    c.write(
        "controller.yaml",
        &format!("{}{extra}", controller_config(port)),
    );
    for h in hosts {
        c.write(&format!("agent-{h}.yaml"), &agent_config(h, port));
    }

    c.start("controller", &["controller", "--config", "controller.yaml"]);
    c.wait_for("controller", &["listening on"]);
    c.wait_for(
        "controller",
        &[
            "new state for cluster daemons-test",
            &format!("{} hosts, 1 VMs", hosts.len()),
        ],
    );
    for h in hosts {
        c.start(h, &["agent", "--config", &format!("agent-{h}.yaml")]);
    }
    c.wait_for("hv-01", &["1 VMs running: vm-1"]);
    for h in hosts {
        c.wait_for("controller", &[&format!("agent {h} connected")]);
        // The pid file the fence script reads is written before the agent
        // dials, so it exists once the agent is connected.
        assert!(c.dir.join(format!("agent-{h}.pid")).exists(), "{h}");
    }
    c
}

#[test]
fn a_host_crash_is_fenced_and_failed_over_and_a_restart_remembers_it() {
    let started = now();
    // The typed events also go to a file, one JSON line each.
    let mut c = start_cluster_with("failover", FENCE_SCRIPT, "events_file: events.jsonl\n");

    // hv-01 crashes: SIGKILL, no goodbye. The child is not reaped until the
    // fence ran, so its pid cannot be reused by another process meanwhile.
    c.daemon("hv-01").child.kill().unwrap();

    c.wait_for("controller", &["host hv-01 fenced by IPMI power-off"]);
    c.wait_for("controller", &["vm vm-1 running on spare-1"]);
    c.wait_for("spare-1", &["world", "vm-1 running on spare-1"]);
    let fenced = std::fs::read_to_string(c.dir.join("fenced.log")).unwrap();
    assert!(fenced.starts_with("hv-01 10.3.0."), "{fenced}");
    assert!(fenced.trim_end().ends_with(" off"), "{fenced}");
    assert_eq!(fenced.lines().count(), 1, "fenced once: {fenced}");
    let _ = c.daemon("hv-01").child.wait();
    // Nothing else moved.
    let log = c.logs();
    assert!(!log.contains("hv-02 fenced"), "{log}");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(c.dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has =
        |kind: &str, key: &str, id: &str| events.iter().any(|e| e["kind"] == kind && e[key] == id);
    assert!(has("host-fenced", "host", "hv-01"), "{events:?}");
    assert!(has("vm-running", "vm", "vm-1"), "{events:?}");
    assert!(!has("host-fenced", "host", "hv-02"), "{events:?}");

    // A clean stop: exit 0, the pid file removed.
    c.signal("controller", "TERM");
    assert_eq!(c.wait_exit("controller"), Some(0), "{}", c.logs());
    c.wait_for("controller", &["SIGTERM: shutting down"]);
    assert!(!c.dir.join("controller.pid").exists());

    // The restarted controller remembers the fence and the failover.
    c.start("controller", &["controller", "--config", "controller.yaml"]);
    let restored = c.wait_for("controller", &["restored state from", "controller.redb"]);
    assert!(restored.contains("3 hosts, 1 VMs"), "{restored}");
    assert!(restored.contains("hv-01 fenced"), "{restored}");
    assert!(restored.contains("vm-1 running on spare-1"), "{restored}");
    // The surviving agents find it again; the VM stays where it is.
    c.wait_for("spare-1", &["connected to the controller again"]);
    c.wait_for("hv-02", &["connected to the controller again"]);
    std::thread::sleep(Duration::from_secs(1));
    let log = c.logs();
    let second_run = log.rsplit("===== controller =====").next().unwrap();
    assert!(!second_run.contains("booting"), "{log}");

    // Agents stop cleanly too, leaving guests running.
    c.signal("spare-1", "INT");
    assert_eq!(c.wait_exit("spare-1"), Some(0), "{}", c.logs());
    c.wait_for(
        "spare-1",
        &["SIGINT: shutting down, leaving guests running"],
    );
    let fence_count = std::fs::read_to_string(c.dir.join("fenced.log"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(fence_count, 1, "{}", c.logs());
    eprintln!("daemons test took {:?}", started.elapsed());
}

fn run_bad(c: &Cluster, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_krrish"))
        .args(args)
        .current_dir(&c.dir)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_column_and_starts_nothing() {
    let c = Cluster::new("bad");
    c.write("cluster.yaml", CLUSTER);
    let port = free_port();

    // A libvirt agent with a dfs section and `tenant_network:` + `lines`.
    let libvirt_agent = |lines: &str| {
        format!(
            "{}dfs:\n  lease_service: 10.78.0.1:7490\n",
            agent_config("hv-01", port)
                .replace(
                    "kind: sim",
                    &format!(
                        "kind: libvirt\n  guest_dir: g\n  dfs_dir: d\n  run_dir: r\n  tenant_network:\n{lines}"
                    ),
                )
                .replace("  cluster_file: cluster.yaml\n", "")
                .replace("  boot_time: 300ms\n", "")
        )
    };
    let cases: Vec<(&str, String, &str)> =
        vec![
        (
            "controller",
            controller_config(port).replace("heartbeat_misses: 3", "heartbeat_mises: 3"),
            "controller.yaml:7:3: timings: unknown field `heartbeat_mises`",
        ),
        (
            "controller",
            controller_config(port).replace("listen: 127.0.0.1:", "listen: 127.0.0.1:9"),
            "controller.yaml:1:9: listen: '127.0.0.1:9",
        ),
        (
            "controller",
            controller_config(port).replace("store: controller.redb", "store: nowhere/c.redb"),
            "controller.yaml:2:8: store: directory",
        ),
        (
            "controller",
            controller_config(port).replace("cluster.yaml", "missing.yaml"),
            "controller.yaml:3:15: cluster_file: ",
        ),
        (
            "controller",
            controller_config(port).replace("kind: command", "kind: ipmi"),
            "controller.yaml:15:12: fencer.command: `kind: ipmi` does not take this",
        ),
        (
            "controller",
            controller_config(port).replace(
                "kind: command\n  command: [./fence.sh]",
                "kind: ipmi\n  username: admin",
            ),
            "controller.yaml:14:9: fencer.password_file: expected a file holding the BMC password",
        ),
        (
            "controller",
            controller_config(port).replace(
                "kind: command\n  command: [./fence.sh]",
                "kind: ipmi\n  username: admin\n  password_file: no-such-file",
            ),
            "fencer.password_file: ",
        ),
        (
            "controller",
            format!("{}dfs:\n  lease_service: nowhere\n", controller_config(port)),
            "dfs.lease_service: 'nowhere': no port; expected the lease service's host:port",
        ),
        (
            "controller",
            format!(
                "{}dfs:\n  lease_service: 10.78.0.1:7490\n  timeout: 1s\n",
                controller_config(port)
            ),
            "dfs.timeout: expected more than 0 and at most the heartbeat interval (200 ms)",
        ),
        (
            "controller",
            format!("{}dfs:\n  lease_service: http://10.78.0.1:7490\n", controller_config(port)),
            "dfs.lease_service: 'http://10.78.0.1:7490': a URL, not an address",
        ),
        (
            "controller",
            format!("{}dfs:\n", controller_config(port)),
            "dfs: expected `lease_service: host:port`",
        ),
        (
            "dfs",
            "listen: 127.0.0.1:7490\nstore: \"\"\n".to_string(),
            "dfs.yaml:2:8: store: expected a file name",
        ),
        (
            "dfs",
            "listen: here\nstore: leases.redb\n".to_string(),
            "dfs.yaml:1:9: listen: 'here'",
        ),
        (
            "dfs",
            "listen: 127.0.0.1:7490\nstore: leases.redb\nmax_lease: 1s\n".to_string(),
            "dfs.yaml:3:12: max_lease: expected at least 3s",
        ),
        (
            "agent",
            format!("{}dfs:\n  lease_service: 10.78.0.1:7490\n", agent_config("hv-01", port)),
            "dfs: only `driver.kind: libvirt` takes this",
        ),
        (
            "agent",
            agent_config("hv-01", port)
                .replace(
                    "kind: sim",
                    "kind: libvirt\n  guest_dir: g\n  dfs_dir: d\n  run_dir: r",
                )
                .replace("  cluster_file: cluster.yaml\n", "")
                .replace("  boot_time: 300ms\n", ""),
            "dfs: expected a `dfs` section with `lease_service: host:port`",
        ),
        (
            "agent",
            agent_config("hv-07", port),
            "agent.yaml:1:7: host: no host named `hv-07` in cluster `daemons-test`",
        ),
        (
            "agent",
            agent_config("hv-01", port).replace("pid_file: agent-", "pid_file: run/agent-"),
            "agent.yaml:3:11: pid_file: directory run does not exist",
        ),
        (
            "agent",
            agent_config("hv-01", port).replace("kind: sim", "kind: libvirt"),
            "agent.yaml:11:17: driver.cluster_file: only `kind: sim` takes this",
        ),
        (
            "agent",
            agent_config("hv-01", port)
                .replace(
                    "kind: sim",
                    "kind: libvirt\n  guest_dir: g\n  dfs_dir: d\n  run_dir: r\n  domain_type: xen",
                )
                .replace("  cluster_file: cluster.yaml\n", "")
                .replace("  boot_time: 300ms\n", ""),
            "driver.domain_type: expected kvm or qemu (TCG), got \"xen\"",
        ),
        (
            "agent",
            agent_config("hv-01", port)
                .replace("boot_time: 300ms", "boot_time: 300ms\n  netns: krl-x"),
            "driver.netns: only `kind: libvirt` takes this",
        ),
        (
            "agent",
            libvirt_agent("    underlay: br-vm\n    local: 10.79.0.10\n    group: 10.0.0.1"),
            "driver.tenant_network.group: expected an IPv4 multicast address (224.0.0.0/4), got \"10.0.0.1\"",
        ),
        (
            "agent",
            libvirt_agent("    underlay: br;vm\n    local: 10.79.0.10"),
            "driver.tenant_network.underlay: expected a link name: 1 to 15 of a-z, A-Z, 0-9, '.', '_' and '-', not starting with '-' or '.', got \"br;vm\"",
        ),
        (
            "agent",
            libvirt_agent(
                "    underlay: br-vm\n    local: 10.79.0.10\n  migration_peers:\n    - { host: hv-01, uri: \"qemu:///system\", run_dir: r, address: 127.0.0.1 }",
            ),
            "driver.migration_peers[0].host: expected another host, named once (not this host), got \"hv-01\"",
        ),
        (
            "agent",
            libvirt_agent(
                "    underlay: br-vm\n    local: 10.79.0.10\n  migration_peers:\n    - { host: spare-1, uri: \"qemu:///system\", run_dir: r, address: spare }",
            ),
            "driver.migration_peers[0].address: expected the IP address that host's QEMU takes migrations on, got \"spare\"",
        ),
        (
            "agent",
            libvirt_agent("    underlay: br-vm\n    local: here"),
            "driver.tenant_network.local: expected this host's IPv4 tunnel address, got \"here\"",
        ),
        (
            "agent",
            agent_config("hv-01", port).replace(
                "boot_time: 300ms",
                "boot_time: 300ms\n  tenant_network:\n    underlay: br-vm\n    local: 10.79.0.10",
            ),
            "driver.tenant_network: only `kind: libvirt` takes this",
        ),
        (
            "agent",
            agent_config("hv-01", port).replace("ack_timeout: 800ms", "ack_timeout: 0ms"),
            "timings.ack_timeout: expected more than 0 and less than lease_duration",
        ),
        (
            "agent",
            agent_config("hv-01", port).replace("connect_timeout: 500ms", "connect_timeout: 1h"),
            "timings.connect_timeout: expected more than 0 and less than lease_duration",
        ),
        (
            "agent",
            agent_config("hv-01", port).replace("boot_time: 300ms", "boot_time: soon"),
            "agent.yaml:12:14: driver.boot_time: 'soon'",
        ),
    ];
    for (daemon, body, want) in cases {
        let file = format!("{daemon}.yaml");
        c.write(&file, &body);
        let (code, out, err) = run_bad(&c, &[daemon, "--config", &file]);
        assert_eq!(code, Some(2), "{daemon} with {want}: {out}{err}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
        // Nothing was started: no log lines, no pid file, no store.
        assert!(out.is_empty(), "{out}");
        assert!(!c.dir.join("controller.pid").exists());
        assert!(!c.dir.join("agent-hv-01.pid").exists());
        assert!(!c.dir.join("controller.redb").exists());
    }
    // The API section: its token file must exist and hold a token.
    c.write("empty-token", "\n");
    c.write("good-token", "0123abcd\n");
    let api = |listen: &str, token_file: &str| {
        format!(
            "{}api:\n  listen: {listen}\n  token_file: {token_file}\n",
            controller_config(port)
        )
    };
    for (body, want) in [
        (
            api("127.0.0.1:7480", "empty-token"),
            "controller.yaml:19:15: api.token_file: ",
        ),
        (
            api("127.0.0.1:7480", "no-such-token"),
            "controller.yaml:19:15: api.token_file: ",
        ),
        (
            api("localhost", "empty-token"),
            "controller.yaml:18:11: api.listen: 'localhost'",
        ),
        (
            format!(
                "{}api:\n  listen: 127.0.0.1:7480\n",
                controller_config(port)
            ),
            "controller.yaml:18:3: api: missing field `token_file`",
        ),
        // Found by the bad-input adversary: these passed `--check`, then
        // failed at start.
        (
            api(&format!("127.0.0.1:{port}"), "good-token"),
            "api.listen: 127.0.0.1:",
        ),
        (
            controller_config(port).replace("store: controller.redb", "store: ."),
            "store: . is a directory; expected a file",
        ),
        (
            format!(
                "{}events_file: no-such-dir/events.jsonl\n",
                controller_config(port)
            ),
            "events_file: directory",
        ),
    ] {
        c.write("controller.yaml", &body);
        let (code, out, err) = run_bad(&c, &["controller", "--config", "controller.yaml"]);
        assert_eq!(code, Some(2), "{want}: {out}{err}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
        assert!(out.is_empty(), "{out}");
        assert!(!c.dir.join("controller.redb").exists());
    }
    let (code, _, err) = run_bad(&c, &["controller", "--config", "absent.yaml"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("absent.yaml: cannot read"), "{err}");
}

/// The example configs under fixtures/daemons/ stay valid.
#[test]
fn the_example_configs_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/daemons");
    for (daemon, file) in [
        ("controller", "controller.yaml"),
        ("agent", "agent-hv-01.yaml"),
        ("agent", "agent-hv-02.yaml"),
        ("agent", "agent-spare-1.yaml"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_krrish"))
            .args([daemon, "--config", file, "--check"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_failing_fence_agent_leaves_the_vm_down_never_assumed_off() {
    let mut c = start_cluster(
        "fence-fails",
        "#!/bin/sh\necho 'BMC 10.3.0.1 unreachable' >&2\nexit 1\n",
    );
    c.daemon("hv-01").child.kill().unwrap();
    let _ = c.daemon("hv-01").child.wait();

    c.wait_for(
        "controller",
        &[
            "fencing hv-01 by IPMI power-off failed",
            "exit status: 1",
            "BMC 10.3.0.1 unreachable",
        ],
    );
    // No DFS to revoke a lease on: the second fence fails too.
    c.wait_for(
        "controller",
        &[
            "fencing hv-01 by DFS lease expiry failed",
            "no DFS lease service configured",
        ],
    );
    // Were a failed fence taken for "off", vm-1 would boot on the spare
    // within the lease margin (200 ms); give it well past the whole lease.
    std::thread::sleep(Duration::from_secs(4));
    c.signal("controller", "TERM");
    assert_eq!(c.wait_exit("controller"), Some(0), "{}", c.logs());
    let log = c.logs();
    assert!(!log.contains("hv-01 fenced by"), "{log}");
    assert!(!log.contains("booting on"), "{log}");
    assert!(!log.contains("vm-1 running on spare-1"), "{log}");

    // The store says the same: hv-01 still being fenced, vm-1 down with
    // it; a restarted controller fences it again from the start.
    c.start("controller", &["controller", "--config", "controller.yaml"]);
    let restored = c.wait_for("controller", &["restored state from"]);
    assert!(restored.contains("hv-01 fencing"), "{restored}");
    assert!(restored.contains("vm-1 host-down"), "{restored}");
    c.wait_for("controller", &["fencing 1 host(s) again from the start"]);
}

const API_TOKEN: &str = "test-token-4f7c1d9e";

/// Runs the `krrish` CLI against the cluster's API with `token`; exit
/// code, stdout, stderr.
fn api_cli(c: &Cluster, api: u16, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let endpoint = format!("http://127.0.0.1:{api}");
    let mut all = vec!["--endpoint", &endpoint];
    all.extend_from_slice(args);
    let o = Command::new(env!("CARGO_BIN_EXE_krrish"))
        .args(&all)
        .env("KRRISH_API_TOKEN", token)
        .current_dir(&c.dir)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn operators_use_the_http_api_through_the_cli() {
    let (mut c, api) = start_cluster_with_api("api");

    // Every host is up, with its spare state and bonds.
    let (code, out, err) = api_cli(&c, api, API_TOKEN, &["hosts", "list"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["HOST", "STATE", "SPARE", "BONDS"]
    );
    for (h, spare) in [("hv-01", "-"), ("hv-02", "-"), ("spare-1", "free")] {
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [h, "up", spare, "ok,ok,ok"]),
            "{h}: {out}"
        );
    }

    // A VM is created and reaches running.
    let (code, out, err) = api_cli(
        &c,
        api,
        API_TOKEN,
        &[
            "instances",
            "run",
            "--id",
            "web-1",
            "--cpu",
            "2",
            "--memory",
            "4G",
            "--disk",
            "20G",
            "--ha",
            "restart",
        ],
    );
    assert_eq!(code, Some(0), "{err}\n{}", c.logs());
    assert!(out.starts_with("vm web-1 placed on hv-"), "{out}");
    c.wait_for("controller", &["api: vm web-1 placed on hv-"]);
    let deadline = now() + WAIT;
    loop {
        let (code, out, err) = api_cli(
            &c,
            api,
            API_TOKEN,
            &["instances", "list", "--state", "running"],
        );
        assert_eq!(code, Some(0), "{err}");
        if out.lines().any(|l| l.starts_with("web-1 ")) {
            assert!(out.lines().any(|l| l.starts_with("vm-1 ")), "{out}");
            break;
        }
        assert!(
            now() < deadline,
            "web-1 not running within {WAIT:?}: {out}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, _) = api_cli(
        &c,
        api,
        API_TOKEN,
        &["--output", "json", "instances", "show", "web-1"],
    );
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "running", "{out}");
    assert!(v["host"].as_str().unwrap().starts_with("hv-"), "{out}");
    // A second VM of the same name is refused, typed.
    let (code, _, err) = api_cli(
        &c,
        api,
        API_TOKEN,
        &[
            "instances",
            "run",
            "--id",
            "web-1",
            "--cpu",
            "1",
            "--memory",
            "512M",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: vm-exists: vm web-1 already exists"),
        "{err}"
    );

    // Unknown ids, bad ids.
    let (code, _, err) = api_cli(&c, api, API_TOKEN, &["instances", "show", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: no-such-vm: no vm named nope"),
        "{err}"
    );
    let (code, _, err) = api_cli(&c, api, API_TOKEN, &["instances", "show", "x;rm -rf"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: invalid-request: id: "), "{err}");
    let (code, _, err) = api_cli(
        &c,
        api,
        API_TOKEN,
        &[
            "instances",
            "run",
            "--id",
            "<b>x</b>",
            "--cpu",
            "1",
            "--memory",
            "1G",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: invalid-request: id: "), "{err}");

    // Reboot in place; refused for an unknown VM.
    let (code, out, err) = api_cli(&c, api, API_TOKEN, &["instances", "reboot", "web-1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("vm web-1 rebooting on "), "{out}");
    c.wait_for("controller", &["vm web-1 rebooted on "]);
    let (code, _, err) = api_cli(&c, api, API_TOKEN, &["instances", "reboot", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: no-such-vm: no vm named nope"),
        "{err}"
    );

    // Terminate: the VM goes; a second terminate names it unknown.
    let (code, out, err) = api_cli(&c, api, API_TOKEN, &["instances", "terminate", "web-1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("vm web-1 terminated"), "{out}");
    let (code, _, err) = api_cli(&c, api, API_TOKEN, &["instances", "show", "web-1"]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: no-such-vm: no vm named web-1"),
        "{err}"
    );
    let (code, _, err) = api_cli(&c, api, API_TOKEN, &["instances", "terminate", "web-1"]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: no-such-vm: no vm named web-1"),
        "{err}"
    );

    // A wrong token is refused and logged, the token never.
    let (code, _, err) = api_cli(&c, api, "not-the-token", &["hosts", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: unauthorized: "), "{err}");
    c.wait_for(
        "controller",
        &[
            "api: refused GET /v1/hosts from 127.0.0.1:",
            "wrong bearer token",
        ],
    );
    // From a token file too.
    let o = Command::new(env!("CARGO_BIN_EXE_krrish"))
        .args([
            "--endpoint",
            &format!("http://127.0.0.1:{api}"),
            "--token-file",
            "api-token",
            "hosts",
            "list",
        ])
        .env_remove("KRRISH_API_TOKEN")
        .current_dir(&c.dir)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let log = c.logs();
    assert!(!log.contains(API_TOKEN), "{log}");
    assert!(!log.contains("not-the-token"), "{log}");

    // Maintenance: a host running nothing enters it at once and takes no
    // VMs; leaving it twice is refused; once out, it takes VMs again.
    let busy: String = {
        let (_, out, _) = api_cli(
            &c,
            api,
            API_TOKEN,
            &["--output", "json", "instances", "list"],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let on: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["host"].as_str().map(str::to_string))
            .collect();
        ["hv-01", "hv-02"]
            .into_iter()
            .find(|h| !on.iter().any(|o| o == h))
            .expect("one production host runs nothing")
            .to_string()
    };
    let out = api_ok(&c, api, &["hosts", "maintenance", &busy]);
    assert_eq!(
        out,
        format!("host {busy} in maintenance (it runs no VMs)\n")
    );
    c.wait_for(
        "controller",
        &[&format!("host {busy} in maintenance and drained")],
    );
    let err = api_refused(
        &c,
        api,
        &[
            "instances",
            "run",
            "--id",
            "web-9",
            "--cpu",
            "1",
            "--memory",
            "1G",
            "--disk",
            "1G",
            "--host",
            &busy,
        ],
        "host-unusable",
    );
    assert!(err.contains("in maintenance"), "{err}");
    api_refused(
        &c,
        api,
        &["hosts", "maintenance", &busy],
        "maintenance-refused",
    );
    let out = api_ok(&c, api, &["hosts", "activate", &busy]);
    assert_eq!(out, format!("host {busy} left maintenance\n"));
    let err = api_refused(
        &c,
        api,
        &["hosts", "activate", &busy],
        "maintenance-refused",
    );
    assert!(err.contains("not in maintenance"), "{err}");
    let (status, _) = http(
        api,
        API_TOKEN,
        "POST",
        "/v1/hosts/hv-99/maintenance",
        Some("{}"),
    );
    assert_eq!(status, 404);

    // No `drs:` in this cluster file: the plan says DRS is off.
    let out = api_ok(&c, api, &["hosts", "drs-plan"]);
    assert_eq!(out, "DRS is off (no `drs:` in the cluster file)\n");

    // Rules at run time: set, refused as the loader would, refused when a
    // must group does not hold where the VMs run, listed, deleted.
    let set = |name: &str, kind: &str, strength: &str, vms: &str, hosts: &str| {
        let mut args = vec![
            "rules",
            "set",
            name,
            "--kind",
            kind,
            "--strength",
            strength,
            "--vms",
            vms,
        ];
        if !hosts.is_empty() {
            args.extend(["--hosts", hosts]);
        }
        args.into_iter()
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    let args = set("pin", "run-on", "should", "vm-1", "hv-01");
    let out = api_ok(
        &c,
        api,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(out, "rule pin (should run-on) set\n");
    // Refused as the loader would, and a must group not holding now.
    for (args, why) in [
        (
            set("apart", "anti-affinity", "must", "vm-1", ""),
            "anti-affinity needs at least two vms",
        ),
        (
            set("away", "run-on", "must", "vm-1", "hv-02"),
            "vm-1 is running on hv-01, not one of its hosts",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = api_refused(&c, api, &args, "rule-refused");
        assert!(err.contains(why), "{err}");
    }
    let out = api_ok(&c, api, &["rules", "list"]);
    assert!(out.starts_with("HA is on cluster-wide\n"), "{out}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["api", "pin", "run-on", "should", "vm-1", "hv-01"]),
        "{out}"
    );
    assert_eq!(
        api_ok(&c, api, &["rules", "delete", "pin"]),
        "rule pin deleted\n"
    );
    api_refused(&c, api, &["rules", "delete", "pin"], "no-such-rule");
    assert_eq!(api_ok(&c, api, &["ha", "off"]), "HA is off cluster-wide\n");
    assert_eq!(api_ok(&c, api, &["ha", "show"]), "HA is off cluster-wide\n");
    assert_eq!(api_ok(&c, api, &["ha", "on"]), "HA is on cluster-wide\n");

    // No API there: exit 2, naming the endpoint.
    let dead = free_port();
    let (code, _, err) = api_cli(&c, dead, API_TOKEN, &["hosts", "list"]);
    assert_eq!(code, Some(2));
    assert!(err.contains(&format!("http://127.0.0.1:{dead}")), "{err}");
}

/// `args` through the CLI must succeed; its stdout.
fn api_ok(c: &Cluster, api: u16, args: &[&str]) -> String {
    let (code, out, err) = api_cli(c, api, API_TOKEN, args);
    assert_eq!(code, Some(0), "{args:?}: {err}\n{}", c.logs());
    out
}

/// `args` through the CLI must be refused (exit 1) with `code`; its stderr.
fn api_refused(c: &Cluster, api: u16, args: &[&str], code: &str) -> String {
    let (exit, out, err) = api_cli(c, api, API_TOKEN, args);
    assert_eq!(exit, Some(1), "{args:?}: {out}{err}");
    assert!(
        err.starts_with(&format!("error: {code}: ")),
        "{args:?}: want {code}, got {err}"
    );
    assert!(out.is_empty(), "{args:?}: {out}");
    err
}

/// Each row of a table, split into its cells.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// One raw HTTP call (no CLI in between): status and JSON body.
fn http(api: u16, token: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let req = ureq::request(method, &format!("http://127.0.0.1:{api}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json");
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    (status, resp.into_json().unwrap())
}

use serde_json::Value;

/// A cluster whose controller serves the HTTP API (token `api-token`), up
/// and listening; and the API's port.
fn start_cluster_with_api(name: &str) -> (Cluster, u16) {
    let hosts = ["hv-01", "hv-02", "spare-1"];
    start_cluster_of_with_api(name, CLUSTER, &hosts)
}

/// As [`start_cluster_with_api`], from the cluster file `cluster` and its
/// `hosts` (see [`start_cluster_of`]).
fn start_cluster_of_with_api(name: &str, cluster: &str, hosts: &[&str]) -> (Cluster, u16) {
    let api = free_port();
    let mut c = start_cluster_of(
        name,
        cluster,
        hosts,
        FENCE_SCRIPT,
        &format!("api:\n  listen: 127.0.0.1:{api}\n  token_file: api-token\n"),
    );
    c.wait_for("controller", &["API on http://127.0.0.1:"]);
    (c, api)
}

/// What each CLI listing in `lists` prints as JSON: the state to compare
/// before and after refusals.
fn json_lists(c: &Cluster, api: u16, lists: &[&[&str]]) -> Vec<Value> {
    lists
        .iter()
        .map(|args| {
            let mut all = vec!["--output", "json"];
            all.extend_from_slice(args);
            serde_json::from_str(&api_ok(c, api, &all)).unwrap()
        })
        .collect()
}

/// Every network list, as JSON, to compare before and after refusals.
fn network_state(c: &Cluster, api: u16) -> Vec<Value> {
    json_lists(
        c,
        api,
        &[
            &["vxnets", "list"],
            &["routers", "list"],
            &["eips", "list"],
            &["dns-aliases", "list"],
        ],
    )
}

#[test]
fn operators_manage_the_network_through_the_cli() {
    let (mut c, api) = start_cluster_with_api("network");

    // A router, a vxnet on it, vm-1 on the vxnet.
    assert_eq!(
        api_ok(&c, api, &["routers", "create", "r1"]),
        "router r1 created\n"
    );
    let out = api_ok(
        &c,
        api,
        &["vxnets", "create", "net-1", "--network", "10.1.2.0"],
    );
    assert!(
        out.starts_with("vxnet net-1 created: 10.1.2.0/24, VNI "),
        "{out}"
    );
    let vni = out.trim_end().rsplit(' ').next().unwrap().to_string();
    assert_eq!(
        api_ok(&c, api, &["routers", "join", "r1", "--vxnet", "net-1"]),
        "vxnet net-1 joined router r1\n"
    );
    let out = api_ok(&c, api, &["vxnets", "join", "net-1", "--instance", "vm-1"]);
    let ip = out
        .strip_prefix("vm vm-1 joined vxnet net-1 at ")
        .unwrap_or_else(|| panic!("{out}"))
        .trim_end()
        .to_string();
    assert!(ip.starts_with("10.1.2."), "{out}");
    c.wait_for(
        "controller",
        &["api: vm vm-1 joined vxnet net-1 at 10.1.2."],
    );

    // An internet EIP and a DNS alias, both on vm-1.
    let out = api_ok(
        &c,
        api,
        &["eips", "allocate", "eip-1", "--kind", "internet"],
    );
    let address = out
        .strip_prefix("eip eip-1 allocated: ")
        .and_then(|s| s.strip_suffix(" (internet)\n"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(address.starts_with("203.0.113."), "{out}");
    assert_eq!(
        api_ok(
            &c,
            api,
            &["eips", "associate", "--eip", "eip-1", "--instance", "vm-1"]
        ),
        "eip eip-1 associated with vm vm-1\n"
    );
    assert_eq!(
        api_ok(&c, api, &["dns-aliases", "create", "db"]),
        "dns alias db created\n"
    );
    assert_eq!(
        api_ok(
            &c,
            api,
            &[
                "dns-aliases",
                "associate",
                "--alias",
                "db",
                "--instance",
                "vm-1"
            ]
        ),
        "dns alias db associated with vm vm-1\n"
    );

    // One vxnet by name (its gateway comes from the IP policy).
    let (status, v) = http(api, API_TOKEN, "GET", "/v1/vxnets/net-1", None);
    assert_eq!(status, 200, "{v}");
    let gateway = v["gateway"].as_str().unwrap().to_string();
    assert!(gateway.starts_with("10.1.2.") && gateway != ip, "{v}");

    // The lists, as tables.
    let t = cells(&api_ok(&c, api, &["vxnets", "list"]));
    assert_eq!(
        t,
        [
            vec!["NAME", "NETWORK", "GATEWAY", "VNI", "ROUTER", "INSTANCES"],
            vec![
                "net-1",
                "10.1.2.0/24",
                &gateway,
                &vni,
                "r1",
                &format!("vm-1:{ip}")
            ],
        ]
    );
    assert_eq!(
        cells(&api_ok(&c, api, &["routers", "list"])),
        [vec!["NAME", "VXNETS"], vec!["r1", "net-1"]]
    );
    assert_eq!(
        cells(&api_ok(&c, api, &["eips", "list"])),
        [
            vec!["NAME", "ADDRESS", "KIND", "INSTANCE"],
            vec!["eip-1", &address, "internet", "vm-1"]
        ]
    );
    assert_eq!(
        cells(&api_ok(&c, api, &["dns-aliases", "list"])),
        [
            vec!["NAME", "INSTANCE", "RESOLVES-TO"],
            vec!["db", "vm-1", &ip]
        ]
    );
    // As JSON, and filtered.
    let v: Value = serde_json::from_str(&api_ok(
        &c,
        api,
        &["--output", "json", "vxnets", "list", "--instance", "vm-1"],
    ))
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["name"], "net-1");
    assert_eq!(v[0]["network"], "10.1.2.0");
    assert_eq!(v[0]["router"], "r1");
    assert_eq!(v[0]["vms"][0]["vm"], "vm-1");
    assert_eq!(v[0]["vms"][0]["ip"], ip.as_str());
    let v: Value = serde_json::from_str(&api_ok(
        &c,
        api,
        &["--output", "json", "eips", "list", "--instance", "vm-1"],
    ))
    .unwrap();
    assert_eq!(v[0]["address"], address.as_str(), "{v}");
    assert_eq!(v[0]["kind"], "internet", "{v}");
    for (list, filter) in [
        ("eips", ["--kind", "external"]),
        ("vxnets", ["--router", "r2"]),
        ("dns-aliases", ["--instance", "web-9"]),
        ("routers", ["--vxnet", "net-9"]),
    ] {
        let mut args = vec!["--output", "json", list, "list"];
        args.extend(filter);
        assert_eq!(api_ok(&c, api, &args).trim(), "[]", "{args:?}");
    }

    // Refusals through the CLI, each changing nothing.
    let before = network_state(&c, api);
    let err = api_refused(
        &c,
        api,
        &["eips", "associate", "--eip", "eip-1", "--instance", "vm-1"],
        "already-associated",
    );
    assert!(err.contains("eip eip-1"), "{err}");
    api_refused(
        &c,
        api,
        &[
            "dns-aliases",
            "associate",
            "--alias",
            "db",
            "--instance",
            "vm-1",
        ],
        "already-associated",
    );
    let err = api_refused(&c, api, &["vxnets", "delete", "net-1"], "in-use");
    assert!(err.contains("vxnet net-1"), "{err}");
    api_refused(&c, api, &["routers", "delete", "r1"], "in-use");
    api_refused(&c, api, &["vxnets", "create", "net-1"], "exists");
    let err = api_refused(&c, api, &["vxnets", "delete", "nope"], "not-found");
    assert!(err.contains("no vxnet named nope"), "{err}");
    for (args, field) in [
        (&["vxnets", "create", "<b>x</b>"][..], "name"),
        (&["routers", "create", "r;rm -rf"][..], "name"),
        (
            &["eips", "allocate", "Evil", "--kind", "internet"][..],
            "name",
        ),
        (&["dns-aliases", "create", "a$(id)"][..], "name"),
        (
            &["vxnets", "join", "net-1", "--instance", "<i>"][..],
            "instance",
        ),
        (
            &["eips", "associate", "--eip", "eip-1", "--instance", "x y"][..],
            "instance",
        ),
        (&["routers", "join", "r1", "--vxnet", "<net>"][..], "vxnet"),
        (&["vxnets", "delete", "../hosts"][..], "name"),
    ] {
        let err = api_refused(&c, api, args, "invalid-request");
        assert!(
            err.starts_with(&format!("error: invalid-request: {field}: expected a name")),
            "{args:?}: {err}"
        );
        assert!(!err.contains('<') && !err.contains('$'), "echoed: {err}");
    }
    let err = api_refused(
        &c,
        api,
        &["vxnets", "create", "net-2", "--network", "10.1.2.999"],
        "invalid-request",
    );
    assert!(err.contains("network: "), "{err}");
    let err = api_refused(
        &c,
        api,
        &["eips", "allocate", "eip-2", "--kind", "moon"],
        "invalid-request",
    );
    assert!(err.contains("kind: "), "{err}");
    let err = api_refused(
        &c,
        api,
        &["eips", "list", "--kind", "moon"],
        "invalid-request",
    );
    assert!(err.contains("kind: expected internet or external"), "{err}");
    // A wrong token: 401, logged without the token, nothing created.
    let (code, _, err) = api_cli(&c, api, "not-the-token", &["vxnets", "create", "evil"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: unauthorized: "), "{err}");
    c.wait_for(
        "controller",
        &[
            "api: refused POST /v1/vxnets from 127.0.0.1:",
            "wrong bearer token",
        ],
    );
    // The controller logged its own refusals.
    c.wait_for(
        "controller",
        &["api: refused: eip eip-1 is already associated"],
    );

    // The same through raw HTTP: statuses and the named field.
    for (method, path, body, status, code, names) in [
        (
            "POST",
            "/v1/eips/eip-1/associate",
            Some(r#"{"instance":"vm-1"}"#),
            409,
            "already-associated",
            "eip-1",
        ),
        ("DELETE", "/v1/vxnets/net-1", None, 409, "in-use", "net-1"),
        ("DELETE", "/v1/eips/nope", None, 404, "not-found", "nope"),
        ("GET", "/v1/routers/nope", None, 404, "not-found", "nope"),
        ("POST", "/v1/vxnets", Some("{"), 400, "invalid-request", ""),
        (
            "POST",
            "/v1/vxnets",
            Some(r#"{"name":"n","colour":"red"}"#),
            400,
            "invalid-request",
            "colour",
        ),
        (
            "POST",
            "/v1/vxnets/net-1/join",
            Some(r#"{"instance":"vm-1","ip":"10.1.2"}"#),
            400,
            "invalid-request",
            "ip",
        ),
        (
            "POST",
            "/v1/eips",
            Some(r#"{"name":"eip-2"}"#),
            400,
            "invalid-request",
            "kind",
        ),
        (
            "GET",
            "/v1/eips?colour=red",
            None,
            400,
            "invalid-request",
            "colour",
        ),
        ("PUT", "/v1/vxnets", None, 405, "method-not-allowed", "PUT"),
    ] {
        let (s, v) = http(api, API_TOKEN, method, path, body);
        assert_eq!(
            (s, v["code"].as_str().unwrap()),
            (status, code),
            "{method} {path}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains(names),
            "{method} {path}: {v}"
        );
    }
    let (s, v) = http(api, "not-the-token", "DELETE", "/v1/eips/eip-1", None);
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(
        network_state(&c, api),
        before,
        "a refusal changed the network"
    );

    // Taken apart again, in order, through the CLI.
    for (args, said) in [
        (
            &["eips", "dissociate", "eip-1"][..],
            "eip eip-1 dissociated from vm vm-1",
        ),
        (&["eips", "release", "eip-1"][..], "eip eip-1 released"),
        (
            &["dns-aliases", "dissociate", "db"][..],
            "dns alias db dissociated from vm vm-1",
        ),
        (&["dns-aliases", "delete", "db"][..], "dns alias db deleted"),
        (
            &["vxnets", "leave", "net-1", "--instance", "vm-1"][..],
            &format!("vm vm-1 left vxnet net-1 ({ip} freed)"),
        ),
        (
            &["routers", "leave", "r1", "--vxnet", "net-1"][..],
            "vxnet net-1 left router r1",
        ),
        (&["vxnets", "delete", "net-1"][..], "vxnet net-1 deleted"),
        (&["routers", "delete", "r1"][..], "router r1 deleted"),
    ] {
        assert_eq!(api_ok(&c, api, args), format!("{said}\n"), "{args:?}");
    }
    assert_eq!(
        network_state(&c, api),
        vec![Value::Array(vec![]); 4],
        "everything deleted"
    );
    api_refused(&c, api, &["eips", "dissociate", "eip-1"], "not-found");
    let log = c.logs();
    assert!(!log.contains(API_TOKEN), "{log}");
    assert!(!log.contains("not-the-token"), "{log}");
}

#[path = "daemons/storage.rs"]
mod storage;

#[path = "daemons/lb.rs"]
mod lb;

#[path = "daemons/services.rs"]
mod services;

#[test]
fn operators_move_disks_between_datastores_through_the_cli() {
    let (c, api) = start_cluster_with_api("datastores");
    api_ok(
        &c,
        api,
        &["datastores", "create", "ds-a", "--capacity", "100G"],
    );
    api_ok(
        &c,
        api,
        &["datastores", "create", "ds-b", "--capacity", "100G"],
    );
    api_ok(
        &c,
        api,
        &["datastores", "create", "mini", "--capacity", "1G"],
    );
    let made = [
        "volumes",
        "create",
        "data",
        "--size",
        "2G",
        "--provisioning",
        "thick",
    ];
    api_ok(&c, api, &[&made[..], &["--datastore", "ds-a"]].concat());
    let state = |c: &Cluster| {
        json_lists(
            c,
            api,
            &[
                &["datastores", "list"],
                &["disk-moves", "list"],
                &["volumes", "list"],
            ],
        )
    };
    // Refusals name what was wrong and change nothing.
    let before = state(&c);
    let refusals = [
        (
            "mini",
            "no-capacity",
            "datastore mini: 2 GiB needed, 1 GiB free",
        ),
        ("ds-a", "invalid-request", "already on datastore ds-a"),
    ];
    for (to, code, words) in refusals {
        let args = ["disk-moves", "start", "--volume", "data", "--datastore", to];
        let err = api_refused(&c, api, &args, code);
        assert!(err.contains(words), "{err}");
    }
    api_refused(&c, api, &["datastores", "delete", "ds-a"], "in-use");
    assert_eq!(state(&c), before);

    let out = api_ok(
        &c,
        api,
        &[
            "disk-moves",
            "start",
            "--volume",
            "data",
            "--datastore",
            "ds-b",
        ],
    );
    assert_eq!(out, "volume data moving ds-a -> ds-b (2 GiB): queued\n");
    // A detached volume: the DFS copies it (2 GiB at 200 MiB/s, ~10 s).
    let list = api_ok(&c, api, &["disk-moves", "list"]);
    assert!(list.contains("copying (dfs)"), "{list}");
    let deadline = now() + Duration::from_secs(60);
    loop {
        let v = &json_lists(&c, api, &[&["volumes", "list"]])[0];
        if v[0]["datastore"] == "ds-b" {
            break;
        }
        assert!(
            now() < deadline,
            "the move never completed: {v}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Emptied, ds-a goes into maintenance with nothing to move, and goes.
    let out = api_ok(&c, api, &["datastores", "drain", "ds-a"]);
    assert!(out.starts_with("datastore ds-a in maintenance"), "{out}");
    let rows = cells(&api_ok(&c, api, &["datastores", "list"]));
    assert!(
        rows.contains(
            &["ds-a", "100G", "0G", "0G", "0%", "0", "drained"]
                .map(String::from)
                .to_vec()
        ),
        "{rows:?}"
    );
    assert_eq!(
        api_ok(&c, api, &["datastores", "delete", "ds-a"]),
        "datastore ds-a deleted\n"
    );
}
