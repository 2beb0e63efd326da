//! The cloud's storage through the real daemons' API and the CLI: images,
//! volumes, snapshots and capture, and refusals that change nothing.

use super::*;

/// `volumes list`'s header row.
const VOLUMES_HEADER: [&str; 6] = [
    "NAME",
    "SIZE",
    "PROVISIONING",
    "STATUS",
    "INSTANCE",
    "SNAPSHOTS",
];

/// Every storage list (images, volumes, web-1's snapshots) as JSON, to
/// compare before and after refusals.
fn storage_state(c: &Cluster, api: u16) -> Vec<Value> {
    json_lists(
        c,
        api,
        &[
            &["images", "list"],
            &["volumes", "list"],
            &["snapshots", "list", "--instance", "web-1"],
        ],
    )
}

#[test]
fn operators_manage_storage_through_the_cli() {
    let (mut c, api) = start_cluster_with_api("storage");

    // An image, and a VM launched from it.
    assert_eq!(
        api_ok(&c, api, &["images", "create", "base", "--size", "20G"]),
        "image base created (20 GiB)\n"
    );
    let out = api_ok(
        &c,
        api,
        &[
            "instances",
            "run",
            "--id",
            "web-1",
            "--cpu",
            "1",
            "--memory",
            "1G",
            "--image",
            "base",
        ],
    );
    assert!(out.starts_with("vm web-1 placed on hv-"), "{out}");
    assert!(out.contains(", image base"), "{out}");

    // Two volumes, one attached; a snapshot covering it.
    assert_eq!(
        api_ok(
            &c,
            api,
            &[
                "volumes",
                "create",
                "data-1",
                "--size",
                "10G",
                "--provisioning",
                "thick-lazy-zeroed"
            ]
        ),
        "volume data-1 created (10 GiB, thick-lazy-zeroed)\n"
    );
    assert_eq!(
        api_ok(&c, api, &["volumes", "create", "scratch", "--size", "1G"]),
        "volume scratch created (1 GiB, thin)\n"
    );
    assert_eq!(
        api_ok(
            &c,
            api,
            &["volumes", "attach", "data-1", "--instance", "web-1"]
        ),
        "volume data-1 attached to vm web-1\n"
    );
    c.wait_for("controller", &["api: volume data-1 attached to vm web-1"]);
    assert_eq!(
        api_ok(
            &c,
            api,
            &["snapshots", "create", "s1", "--instance", "web-1"]
        ),
        "snapshot s1 of vm web-1 requested (creating until its host has taken it)\n"
    );
    // Taken by web-1's host on its disks: available.
    c.wait_for(
        "controller",
        &["snapshot op(s) of web-1 on its disks, through #1"],
    );

    // The lists, as tables and as JSON, and filtered.
    assert_eq!(
        cells(&api_ok(&c, api, &["volumes", "list"])),
        [
            VOLUMES_HEADER.to_vec(),
            vec!["data-1", "10G", "thick-lazy-zeroed", "in-use", "web-1", "1"],
            vec!["scratch", "1G", "thin", "available", "-", "0"],
        ]
    );
    let v: Value = serde_json::from_str(&api_ok(
        &c,
        api,
        &["--output", "json", "volumes", "list", "--instance", "web-1"],
    ))
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["name"], "data-1", "{v}");
    assert_eq!(v[0]["size_gib"], 10, "{v}");
    assert_eq!(v[0]["provisioning"], "thick-lazy-zeroed", "{v}");
    assert_eq!(v[0]["attached_to"], "web-1", "{v}");
    assert_eq!(
        api_ok(
            &c,
            api,
            &["--output", "json", "volumes", "list", "--instance", "vm-1"]
        )
        .trim(),
        "[]"
    );
    let t = cells(&api_ok(
        &c,
        api,
        &["snapshots", "list", "--instance", "web-1"],
    ));
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(
        t[0],
        ["NAME", "INSTANCE", "STATUS", "VOLUMES", "TAKEN-AT-MS"]
    );
    assert_eq!(t[1][..4], ["s1", "web-1", "available", "data-1"]);
    let v: Value = serde_json::from_str(&api_ok(
        &c,
        api,
        &[
            "--output",
            "json",
            "snapshots",
            "list",
            "--instance",
            "web-1",
        ],
    ))
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["name"], "s1", "{v}");
    assert_eq!(v[0]["vm"], "web-1", "{v}");
    assert_eq!(v[0]["volumes"], serde_json::json!(["data-1"]), "{v}");
    let (status, v) = http(api, API_TOKEN, "GET", "/v1/volumes/data-1", None);
    assert_eq!(
        (status, &v["attached_to"]),
        (200, &serde_json::json!("web-1"))
    );

    // Refusals through the CLI, each changing nothing.
    let before = storage_state(&c, api);
    let err = api_refused(
        &c,
        api,
        &["volumes", "attach", "data-1", "--instance", "web-1"],
        "already-associated",
    );
    assert!(
        err.contains("volume data-1: already attached to web-1"),
        "{err}"
    );
    let err = api_refused(
        &c,
        api,
        &["volumes", "detach", "data-1", "--instance", "vm-1"],
        "not-associated",
    );
    assert!(err.contains("attached to web-1, not vm-1"), "{err}");
    api_refused(
        &c,
        api,
        &["volumes", "detach", "scratch", "--instance", "web-1"],
        "not-associated",
    );
    let err = api_refused(&c, api, &["volumes", "delete", "data-1"], "in-use");
    assert!(err.contains("volume data-1: attached to web-1"), "{err}");
    api_refused(
        &c,
        api,
        &["volumes", "create", "data-1", "--size", "1G"],
        "exists",
    );
    api_refused(
        &c,
        api,
        &["images", "create", "base", "--size", "1G"],
        "exists",
    );
    api_refused(
        &c,
        api,
        &["snapshots", "create", "s1", "--instance", "web-1"],
        "exists",
    );
    let err = api_refused(
        &c,
        api,
        &["snapshots", "revert", "nope", "--instance", "web-1"],
        "not-found",
    );
    assert!(err.contains("vm web-1: no snapshot nope"), "{err}");
    let err = api_refused(&c, api, &["volumes", "delete", "nope"], "not-found");
    assert!(err.contains("volume nope: no such volume"), "{err}");
    let err = api_refused(
        &c,
        api,
        &["snapshots", "list", "--instance", "vm-1"],
        "not-found",
    );
    assert!(err.contains("vm vm-1: no root disk"), "{err}");
    let err = api_refused(
        &c,
        api,
        &["volumes", "create", "huge", "--size", "1000000T"],
        "invalid-request",
    );
    assert!(
        err.contains("size_gib: expected 1 to 16384 GiB, got 1024000000"),
        "{err}"
    );
    // An image's size is checked in the caller's GiB, not in blocks.
    let err = api_refused(
        &c,
        api,
        &["images", "create", "huge", "--size", "2T"],
        "invalid-request",
    );
    assert!(
        err.contains("size_gib: expected 1 to 1024 GiB, got 2048"),
        "{err}"
    );
    for (args, field) in [
        (
            &["volumes", "create", "<b>x</b>", "--size", "1G"][..],
            "name",
        ),
        (&["images", "create", "Evil", "--size", "1G"][..], "name"),
        (
            &["volumes", "attach", "scratch", "--instance", "<i>"][..],
            "instance",
        ),
        (
            &["volumes", "detach", "data-1", "--instance", "x;rm -rf"][..],
            "instance",
        ),
        (&["volumes", "delete", "../hosts"][..], "name"),
        (
            &["snapshots", "create", "a$(id)", "--instance", "web-1"][..],
            "name",
        ),
        (
            &["snapshots", "revert", "<s>", "--instance", "web-1"][..],
            "name",
        ),
        (&["snapshots", "list", "--instance", "<b>"][..], "id"),
        (
            &["instances", "capture", "web-1", "--image", "x y"][..],
            "image",
        ),
    ] {
        let err = api_refused(&c, api, args, "invalid-request");
        assert!(
            err.starts_with(&format!("error: invalid-request: {field}: expected a name")),
            "{args:?}: {err}"
        );
        assert!(!err.contains('<') && !err.contains('$'), "echoed: {err}");
    }
    // A size of 0 is bad input to the CLI (exit 2, nothing sent) and a 400
    // naming the field to the API.
    for args in [
        &["volumes", "create", "zero", "--size", "0"][..],
        &["images", "create", "zero", "--size", "0G"][..],
    ] {
        let (code, out, err) = api_cli(&c, api, API_TOKEN, args);
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(err.contains("must be more than 0"), "{args:?}: {err}");
    }
    for (method, path, body, status, code, names) in [
        (
            "POST",
            "/v1/volumes",
            Some(r#"{"name":"zero","size_gib":0}"#),
            400,
            "invalid-request",
            "size_gib",
        ),
        (
            "POST",
            "/v1/images",
            Some(r#"{"name":"zero","size_gib":0}"#),
            400,
            "invalid-request",
            "size_gib",
        ),
        (
            "POST",
            "/v1/volumes",
            Some(r#"{"name":"v","size_gib":1,"provisioning":"moon"}"#),
            400,
            "invalid-request",
            "provisioning",
        ),
        (
            "POST",
            "/v1/volumes/data-1/attach",
            Some(r#"{"instance":"web-1","colour":"red"}"#),
            400,
            "invalid-request",
            "colour",
        ),
        (
            "GET",
            "/v1/volumes?colour=red",
            None,
            400,
            "invalid-request",
            "colour",
        ),
        ("GET", "/v1/volumes/nope", None, 404, "not-found", "nope"),
        (
            "POST",
            "/v1/volumes/data-1/attach",
            Some(r#"{"instance":"web-1"}"#),
            409,
            "already-associated",
            "data-1",
        ),
        (
            "DELETE",
            "/v1/volumes/data-1",
            None,
            409,
            "in-use",
            "data-1",
        ),
        ("PUT", "/v1/images", None, 405, "method-not-allowed", "PUT"),
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
    let (s, _) = http(api, "not-the-token", "DELETE", "/v1/volumes/scratch", None);
    assert_eq!(s, 401);
    c.wait_for(
        "controller",
        &["api: refused: volume data-1: already attached to web-1"],
    );
    assert_eq!(storage_state(&c, api), before, "a refusal changed storage");

    // Revert, delete the snapshot, detach, capture.
    for (args, said) in [
        (
            &["snapshots", "revert", "s1", "--instance", "web-1"][..],
            "vm web-1 reset to snapshot s1",
        ),
        (
            &["snapshots", "delete", "s1", "--instance", "web-1"][..],
            "snapshot s1 of vm web-1 deleted",
        ),
    ] {
        assert_eq!(api_ok(&c, api, args), format!("{said}\n"), "{args:?}");
    }
    // The volume stays plugged in until web-1's host has done both.
    c.wait_for(
        "controller",
        &["snapshot op(s) of web-1 on its disks, through #3"],
    );
    for (args, said) in [
        (
            &["volumes", "detach", "data-1", "--instance", "web-1"][..],
            "volume data-1 detached from vm web-1",
        ),
        (
            &["instances", "capture", "web-1", "--image", "gold"][..],
            "vm web-1 captured as image gold",
        ),
    ] {
        assert_eq!(api_ok(&c, api, args), format!("{said}\n"), "{args:?}");
    }
    // Detached, the volume is available once web-1's host has unplugged it.
    c.wait_for("controller", &["volume data-1 available: "]);
    assert_eq!(
        api_ok(
            &c,
            api,
            &[
                "--output",
                "json",
                "snapshots",
                "list",
                "--instance",
                "web-1"
            ]
        )
        .trim(),
        "[]"
    );
    assert_eq!(
        cells(&api_ok(&c, api, &["volumes", "list"])),
        [
            VOLUMES_HEADER.to_vec(),
            vec!["data-1", "10G", "thick-lazy-zeroed", "available", "-", "0"],
            vec!["scratch", "1G", "thin", "available", "-", "0"],
        ]
    );
    assert_eq!(
        cells(&api_ok(&c, api, &["images", "list"])),
        [
            vec!["NAME", "SIZE", "SOURCE", "INSTANCE"],
            vec!["base", "20G", "registered", "-"],
            vec!["gold", "20G", "captured", "web-1"],
        ]
    );
    let v: Value =
        serde_json::from_str(&api_ok(&c, api, &["--output", "json", "images", "list"])).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"name": "base", "size_gib": 20, "source": "registered", "vm": null},
            {"name": "gold", "size_gib": 20, "source": "captured", "vm": "web-1"},
        ])
    );
    // A detached volume can go; a captured image launches a VM.
    assert_eq!(
        api_ok(&c, api, &["volumes", "delete", "data-1"]),
        "volume data-1 deleted\n"
    );
    let out = api_ok(
        &c,
        api,
        &[
            "instances",
            "run",
            "--id",
            "web-2",
            "--cpu",
            "1",
            "--memory",
            "1G",
            "--image",
            "gold",
        ],
    );
    assert!(out.contains(", image gold"), "{out}");
    let log = c.logs();
    assert!(!log.contains(API_TOKEN), "{log}");
}
