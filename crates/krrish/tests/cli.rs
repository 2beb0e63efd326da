//! The command line as users run it: exit codes, the closing line, errors
//! that name the file, line or flag.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn krrish(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_krrish"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the binary runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scratch(name: &str, body: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn a_broken_scenario_fails_alone_and_the_rest_still_run() {
    let broken = scratch("broken.yaml", "cluster:\n  host_groups:\n    - { prefix: hv-, count: 2, zone: ECS }\ntimeline:\n  - at: 5s\n    crash: hv-7\nend: 10s\n");
    let o = krrish(&[
        "scenario",
        "run",
        "scenarios/sizing/spares-8.yaml",
        broken.to_str().unwrap(),
    ]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("PASS  sizing/spares-8"), "{out}");
    assert!(
        out.contains("broken.yaml:6:12: crash: no host named `hv-7`"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("1 passed, 1 failed"), "{out}");
}

#[test]
fn a_failing_expectation_prints_time_seed_and_the_command_to_reproduce() {
    let s = scratch(
        "wrong.yaml",
        "cluster:\n  host_groups:\n    - { prefix: hv-, count: 2, zone: ECS }\nseed: 9\ntimeline:\n  - at: 5s\n    crash: hv-01\nexpect:\n  - at: 30s\n    host_state: { host: hv-01, state: up }\nend: 40s\n",
    );
    let o = krrish(&["scenario", "run", s.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("expectation at line 9 (30.000s) failed at 30.000s: host hv-01 is"),
        "{out}"
    );
    assert!(out.contains("(seed 9)"), "{out}");
    assert!(
        out.contains(&format!(
            "reproduce: cargo xtask scenario {} --seed 9",
            s.display()
        )),
        "{out}"
    );
    assert!(out.contains("trace: target/scenario-traces/"), "{out}");
}

#[test]
fn check_validates_without_running() {
    let o = krrish(&["scenario", "check", "scenarios"]);
    let (out, _) = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("ok    ha/host-crash"), "{out}");
}

#[test]
fn a_trace_file_holds_the_run() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let t = dir.join("trace.log");
    let o = krrish(&[
        "scenario",
        "run",
        "scenarios/ha/host-crash.yaml",
        "--seed",
        "7",
        "--trace-out",
        t.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let trace = std::fs::read_to_string(&t).unwrap();
    assert!(trace.starts_with("# krrish scenario ha/host-crash seed 7\n"));
    assert!(trace.contains("host hv-03 fenced by IPMI power-off"));
}

#[test]
fn planner_refuses_bad_input_naming_the_flag_or_file() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--hosts", "10", "--mtbf-hours", "-5"],
            "--mtbf-hours must be a positive number",
        ),
        (
            &["--hosts", "10", "--mttr-hours", "0"],
            "--mttr-hours must be a positive number",
        ),
        (
            &["--hosts", "10", "--max-spares", "20"],
            "--max-spares 20 is more than the 10 production hosts",
        ),
        (&["--hosts", "0"], "--hosts must be at least 1"),
        // Found by the bad-input adversary: these aborted on allocation or
        // named the wrong flag after computing the whole table.
        (
            &["--hosts", "99999999999"],
            "--hosts must be between 0 and 100000, not 99999999999",
        ),
        (
            &["--hosts", "10", "--vms-per-host", "4294967295"],
            "--vms-per-host must be between 0 and 10000",
        ),
        (
            &["--hosts", "10", "--validate", "0"],
            "--validate must be between 1 and 1000000, not 0",
        ),
        (
            &["--hosts", "10", "--years", "1e9"],
            "--years must be at most 1000",
        ),
        (
            &["--hosts", "10", "--plot", "fixtures/clusters/c3-live.yaml"],
            "--plot fixtures/clusters/c3-live.yaml: would write an SVG plot into a YAML file",
        ),
        (
            &["--hosts", "10", "--target-availability", "2"],
            "--target-availability must be between 0 and 1",
        ),
        (
            &["--cluster", "fixtures/clusters/nope.yaml"],
            "fixtures/clusters/nope.yaml: cannot read",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["plan", "spares"];
        all.extend_from_slice(args);
        let o = krrish(&all);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
    }
    let bad = scratch(
        "bad-cluster.yaml",
        "host_groups:\n  - { prefix: hv-, count: two, zone: ECS }\n",
    );
    let o = krrish(&["plan", "spares", "--cluster", bad.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(err.contains("bad-cluster.yaml:2:"), "{err}");
}

#[test]
fn planner_json_rows_carry_the_documented_fields_and_a_plot_is_written() {
    let svg = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join("spares.svg");
    std::fs::create_dir_all(svg.parent().unwrap()).unwrap();
    let o = krrish(&[
        "plan",
        "spares",
        "--hosts",
        "12",
        "--trials",
        "50",
        "--years",
        "2",
        "--format",
        "json",
        "--target-availability",
        "0.999",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("seed 1"), "the seed is printed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = &v["rows"][1];
    for field in [
        "uncovered_host_fraction",
        "failures_without_spare",
        "vm_hours_down_per_year",
        "vm_availability",
    ] {
        assert!(
            row[field]["mean"].is_number() && row[field]["ci95"].is_number(),
            "{field}: {row}"
        );
    }
    assert!(row.get("rto_p50_s").is_some() && row.get("rto_p99_s").is_some());
    assert_eq!(v["step_table_spares"], 3);
    assert!(v["spares_for_target"].is_number(), "{v}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("step table"));
}

#[test]
fn planner_reads_a_cluster_file() {
    let o = krrish(&[
        "plan",
        "spares",
        "--cluster",
        "fixtures/clusters/prod-60.yaml",
        "--trials",
        "40",
        "--years",
        "2",
        "--target-availability",
        "0.9999",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("60 production hosts, 480 VMs"), "{out}");
    assert!(out.contains("gives 5 spare(s) for 60 hosts"), "{out}");
    assert!(out.contains("target availability 0.9999"), "{out}");
}

/// The measured column of a validation row: (model, HA manager).
fn validation_row<'a>(out: &'a str, name: &str) -> (&'a str, &'a str) {
    let line = out
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} row in {out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[cols.len() - 2], cols[cols.len() - 1])
}

#[test]
fn plan_validate_replays_the_planners_histories_with_the_real_ha_manager() {
    // 12 hosts with the step table's 3 spares, a year each: every failure
    // finds a spare, in the model and in the event world.
    let o = krrish(&[
        "plan",
        "spares",
        "--hosts",
        "12",
        "--years",
        "1",
        "--trials",
        "50",
        "--validate",
        "2",
        "--seed",
        "3",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("validation: 2 trials × 1 years replayed"),
        "{out}"
    );
    assert_eq!(
        validation_row(&out, "uncovered_host_fraction"),
        ("0.00e0", "0.00e0")
    );
    let crash = out
        .lines()
        .find(|l| l.starts_with("crash (BMC answers)"))
        .unwrap();
    let vms: usize = crash.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(vms > 0, "some crash was failed over: {out}");
    assert!(
        out.contains("the table again with the measured mean failover time"),
        "{out}"
    );
}

#[test]
fn plan_validate_measures_coverage_when_spares_run_short() {
    // Eight hosts, one spare, a failure every 300 h repaired in 60 h: hosts
    // often wait. The HA manager's uncovered time must be the model's
    // within a fifth (they share the histories, not the code).
    let o = krrish(&[
        "plan",
        "spares",
        "--cluster",
        "fixtures/clusters/small-8.yaml",
        "--mtbf-hours",
        "300",
        "--mttr-hours",
        "60",
        "--years",
        "1",
        "--validate",
        "2",
        "--seed",
        "2",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let (model, measured) = validation_row(&out, "uncovered_host_fraction");
    let (model, measured): (f64, f64) = (model.parse().unwrap(), measured.parse().unwrap());
    assert!(model > 1e-2, "the case has teeth: {out}");
    assert!(
        (measured - model).abs() <= model / 5.0,
        "model {model:e}, HA manager {measured:e}: {out}"
    );
}

/// Found by the bad-input adversary (2026-12-04): each of these panicked,
/// wrapped a size silently, looped on symbolic links or wrote a trace over
/// the scenario it ran.
#[test]
fn scenario_input_that_once_panicked_wrapped_or_overwrote_is_handled() {
    let cluster =
        "cluster:\n  host_groups:\n    - { prefix: hv-, count: 2, zone: ECS }\n  spares: 1\n";
    // A controller restart at 0 s: run (one tick later), not a panic.
    let restart = scratch(
        "restart-at-0.yaml",
        &format!("{cluster}timeline:\n  - at: 0s\n    controller: restart\nend: 20s\n"),
    );
    let o = krrish(&["scenario", "run", restart.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    // 2^54 GiB wrapped to 0 MiB: refused with its line and field.
    let huge = scratch(
        "huge-vm.yaml",
        &format!("{cluster}timeline:\n  - at: 1s\n    run_instance: {{ name: huge, vcpus: 1, memory_gib: 18014398509481984 }}\nend: 20s\n"),
    );
    let o = krrish(&["scenario", "check", huge.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(
        out.contains("huge-vm.yaml:7:19") && out.contains("memory_gib: expected at most 1048576"),
        "{out}{err}"
    );
    // Names the API refuses are refused where they are written.
    let upper = scratch(
        "upper-names.yaml",
        "cluster:\n  hosts:\n    - { name: HV-01, zone: ECS }\n  spares: 1\nend: 20s\n",
    );
    let o = krrish(&["scenario", "check", upper.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(
        out.contains("upper-names.yaml:3:")
            && out.contains("host name `HV-01`: expected 1 to 63 characters a-z"),
        "{out}{err}"
    );
    let bad_vm = scratch(
        "bad-vm-name.yaml",
        &format!("{cluster}timeline:\n  - at: 1s\n    run_instance: {{ name: \"UPPER case\", vcpus: 1, memory_gib: 1 }}\nend: 20s\n"),
    );
    let o = krrish(&["scenario", "check", bad_vm.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(
        out.contains("bad-vm-name.yaml:7:") && out.contains("run_instance.name: expected"),
        "{out}{err}"
    );
    // A directory whose links lead back to it: walked once.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-loop");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(&restart, dir.join("one.yaml")).unwrap();
    for l in ["a", "b", "c", "d"] {
        std::os::unix::fs::symlink("..", dir.join("sub").join(l)).unwrap();
    }
    let o = krrish(&["scenario", "check", dir.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(out.contains("1 passed, 0 failed"), "{out}{err}");
    // A trace written over the scenario itself: refused, the file intact.
    let before = std::fs::read_to_string(&restart).unwrap();
    let o = krrish(&[
        "scenario",
        "run",
        restart.to_str().unwrap(),
        "--trace-out",
        restart.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert!(err.contains("--trace-out") && err.contains("YAML"), "{err}");
    assert_eq!(std::fs::read_to_string(&restart).unwrap(), before);
}

/// A token file of two lines is refused before any call, and the token is
/// never printed (it went into a header, which was refused as if the
/// controller were unreachable, with the token in the message).
#[test]
fn a_token_file_of_two_lines_is_refused_without_echoing_it() {
    let f = scratch("two-line-token", "secret-abc\nsecret-def\n");
    let o = krrish(&["--token-file", f.to_str().unwrap(), "hosts", "list"]);
    let (out, err) = text(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        err.contains("expected one line of printable characters"),
        "{out}{err}"
    );
    assert!(!err.contains("secret-"), "{err}");
}

/// Found by the bad-input adversary: a name defined twice was pointed at
/// its first definition, and a byte-order mark made a present `end:`
/// "missing".
#[test]
fn a_duplicate_points_at_the_second_definition_and_a_byte_order_mark_is_skipped() {
    let dup = scratch(
        "dup-host.yaml",
        "cluster:\n  hosts:\n    - { name: hv-01, zone: ECS }\n    - { name: hv-01, zone: ECS }\n  spares: 1\nend: 30s\n",
    );
    let o = krrish(&["scenario", "check", dup.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(
        out.contains("dup-host.yaml:4:") && out.contains("host `hv-01` is defined twice"),
        "{out}{err}"
    );
    let bom = scratch(
        "bom.yaml",
        "\u{feff}end: 30s\ncluster:\n  hosts:\n    - { name: hv-01, zone: ECS }\n  spares: 1\n",
    );
    let o = krrish(&["scenario", "check", bom.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
}
