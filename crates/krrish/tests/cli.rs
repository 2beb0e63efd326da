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
