//! MongoDB replica sets and cache clusters through the real daemons' API
//! and the CLI, on a cluster of three production hosts (a replica set of
//! three needs three hosts): created on running VMs, read back as JSON and
//! as tables, refusals typed and naming the field that change nothing, and
//! deleted with their VMs left running.

use super::*;

/// Three production hosts and a spare; vm-1 on hv-01.
const CLUSTER_3: &str = "\
name: daemons-test
defaults: { vcpus: 16, memory_gib: 64, disk_gib: 500 }
hosts:
  - { name: hv-01, zone: ECS }
  - { name: hv-02, zone: ECS }
  - { name: hv-03, zone: ECS }
spares: 1
vms:
  - { name: vm-1, host: hv-01, vcpus: 2, memory_gib: 4, disk_gib: 20, ha: restart }
";
const HOSTS_3: [&str; 4] = ["hv-01", "hv-02", "hv-03", "spare-1"];

/// Runs each `(vm, host)` through the CLI and waits until all run.
fn run_vms(c: &Cluster, api: u16, vms: &[(&str, &str)]) {
    for (vm, host) in vms {
        let out = api_ok(
            c,
            api,
            &[
                "instances",
                "run",
                "--id",
                vm,
                "--cpu",
                "1",
                "--memory",
                "512M",
                "--host",
                host,
            ],
        );
        assert!(
            out.starts_with(&format!("vm {vm} placed on {host}")),
            "{out}"
        );
    }
    let deadline = now() + WAIT;
    loop {
        let out = api_ok(c, api, &["instances", "list", "--state", "running"]);
        let running: Vec<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
        if vms.iter().all(|(vm, _)| running.contains(vm)) {
            return;
        }
        assert!(now() < deadline, "not all running within {WAIT:?}: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every replica set, cache cluster and RDB, as JSON, to compare before
/// and after refusals.
fn services_state(c: &Cluster, api: u16) -> Vec<Value> {
    json_lists(
        c,
        api,
        &[
            &["mongodbs", "describe"],
            &["caches", "describe"],
            &["rdbs", "describe"],
        ],
    )
}

/// `(status, code, message)` of one raw call.
fn call(api: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    let (s, v) = http(api, API_TOKEN, method, path, body);
    let code = v["code"].as_str().unwrap_or("").to_string();
    let message = v["message"].as_str().unwrap_or("").to_string();
    (s, code, message)
}

#[test]
fn operators_manage_mongodb_replica_sets_over_the_http_api() {
    let (mut c, api) = start_cluster_of_with_api("mongodb", CLUSTER_3, &HOSTS_3);
    run_vms(
        &c,
        api,
        &[
            ("m-a", "hv-01"),
            ("m-b", "hv-02"),
            ("m-c", "hv-03"),
            ("m-d", "hv-02"),
        ],
    );

    // Created over HTTP: 201, the first member primary at epoch 1.
    let (status, v) = http(
        api,
        API_TOKEN,
        "POST",
        "/v1/mongodbs",
        Some(r#"{"name":"mongo-1","members":["m-a","m-b","m-c"]}"#),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["name"], "mongo-1", "{v}");
    assert_eq!(v["primary"], "m-a", "{v}");
    assert_eq!(v["epoch"], 1, "{v}");
    assert_eq!(v["writable"], true, "{v}");
    assert_eq!(v["degraded"], Value::Null, "{v}");
    let members: Vec<(&str, &str, &str)> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["vm"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
                m["host"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            ("m-a", "primary", "hv-01"),
            ("m-b", "secondary", "hv-02"),
            ("m-c", "secondary", "hv-03"),
        ]
    );
    c.wait_for(
        "controller",
        &["api: mongodb mongo-1 created: primary m-a on hv-01, m-b on hv-02, m-c on hv-03"],
    );

    // Read back: the list, one by name, and the CLI's table and JSON.
    let (status, list) = http(api, API_TOKEN, "GET", "/v1/mongodbs", None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, Value::Array(vec![v.clone()]));
    let (status, one) = http(api, API_TOKEN, "GET", "/v1/mongodbs/mongo-1", None);
    assert_eq!((status, &one), (200, &v));
    assert_eq!(
        cells(&api_ok(&c, api, &["mongodbs", "describe"])),
        [
            vec!["NAME", "EPOCH", "WRITABLE", "VM", "ROLE", "HEALTH", "HOST", "DEGRADED"],
            vec!["mongo-1", "1", "true", "m-a", "primary", "healthy", "hv-01", "-"],
            vec![
                "mongo-1",
                "1",
                "true",
                "m-b",
                "secondary",
                "healthy",
                "hv-02",
                "-"
            ],
            vec![
                "mongo-1",
                "1",
                "true",
                "m-c",
                "secondary",
                "healthy",
                "hv-03",
                "-"
            ],
        ]
    );
    let j: Value = serde_json::from_str(&api_ok(
        &c,
        api,
        &["--output", "json", "mongodbs", "describe", "mongo-1"],
    ))
    .unwrap();
    assert_eq!(j[0]["name"], "mongo-1", "{j}");
    assert_eq!(j[0]["members"][2]["vm"], "m-c", "{j}");

    // Refusals, typed and naming the field; none changes anything.
    let before = services_state(&c, api);
    for (method, path, body, want, names) in [
        (
            "POST",
            "/v1/mongodbs",
            Some(r#"{"name":"mongo-2","members":["m-d","m-c"]}"#),
            (400, "invalid-request"),
            "members: a replica set has 3, 5 or 7 members (an odd number, so a majority exists), not 2",
        ),
        (
            "POST",
            "/v1/mongodbs",
            Some(r#"{"name":"mongo-2","members":["m-d","vm-1","vm-404"]}"#),
            (404, "not-found"),
            "members[2]: no vm named vm-404",
        ),
        (
            "POST",
            "/v1/mongodbs",
            Some(r#"{"name":"mongo-2","members":["vm-1","m-d","m-b"]}"#),
            (409, "in-use"),
            "members[2]: vm m-b is already a member of mongodb mongo-1",
        ),
        (
            "POST",
            "/v1/mongodbs",
            Some(r#"{"name":"mongo-1","members":["vm-1","m-d","vm-404"]}"#),
            (409, "exists"),
            "name: mongodb mongo-1 already exists",
        ),
        (
            "POST",
            "/v1/mongodbs",
            Some(r#"{"name":"mongo-2","members":["vm-1","<b>x</b>","m-d"]}"#),
            (400, "invalid-request"),
            "members[1]: expected a name",
        ),
        (
            "POST",
            "/v1/mongodbs",
            Some(r#"{"name":"mongo-2","members":["vm-1","m-d"],"arbiter":"m-c"}"#),
            (400, "invalid-request"),
            "arbiter",
        ),
        (
            "POST",
            "/v1/mongodbs",
            Some(r#"{"name":"mongo-2"}"#),
            (400, "invalid-request"),
            "members",
        ),
        (
            "GET",
            "/v1/mongodbs/nope",
            None,
            (404, "not-found"),
            "no mongodb named nope",
        ),
        (
            "DELETE",
            "/v1/mongodbs/nope",
            None,
            (404, "not-found"),
            "name: no mongodb named nope",
        ),
        (
            "DELETE",
            "/v1/mongodbs/a$(id)",
            None,
            (400, "invalid-request"),
            "name: expected a name",
        ),
        (
            "PUT",
            "/v1/mongodbs",
            None,
            (405, "method-not-allowed"),
            "PUT",
        ),
    ] {
        let (s, code, message) = call(api, method, path, body);
        assert_eq!((s, code.as_str()), want, "{method} {path}: {message}");
        assert!(message.contains(names), "{method} {path}: {message}");
        assert!(!message.contains('<') && !message.contains('$'), "echoed: {message}");
    }
    // Through the CLI: exit 1, the code and message on stderr.
    let err = api_refused(
        &c,
        api,
        &[
            "mongodbs", "create", "mongo-2", "--member", "m-d", "--member", "vm-1", "--member",
            "m-c",
        ],
        "in-use",
    );
    assert!(
        err.contains("members[2]: vm m-c is already a member of mongodb mongo-1"),
        "{err}"
    );
    let err = api_refused(
        &c,
        api,
        &[
            "mongodbs", "create", "mongo-2", "--member", "m-d", "--member", "vm-1",
        ],
        "invalid-request",
    );
    assert!(err.contains("not 2"), "{err}");
    api_refused(&c, api, &["mongodbs", "describe", "nope"], "not-found");
    c.wait_for(
        "controller",
        &["api: refused: members: a replica set has 3, 5 or 7 members"],
    );
    assert_eq!(
        services_state(&c, api),
        before,
        "a refusal changed a service"
    );

    // Deleted over HTTP: its VMs stay; again is not-found.
    let (status, v) = http(api, API_TOKEN, "DELETE", "/v1/mongodbs/mongo-1", None);
    assert_eq!((status, &v), (200, &serde_json::json!({"name": "mongo-1"})));
    c.wait_for(
        "controller",
        &["api: mongodb mongo-1 deleted; its VMs stay"],
    );
    let (s, code, message) = call(api, "GET", "/v1/mongodbs/mongo-1", None);
    assert_eq!((s, code.as_str()), (404, "not-found"), "{message}");
    assert_eq!(
        api_ok(&c, api, &["--output", "json", "mongodbs", "describe"]).trim(),
        "[]"
    );
    let out = api_ok(&c, api, &["instances", "list", "--state", "running"]);
    for vm in ["m-a", "m-b", "m-c"] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{vm} "))),
            "{out}"
        );
    }

    // The CLI creates and deletes one the same way; its members are free
    // again.
    assert_eq!(
        api_ok(
            &c,
            api,
            &[
                "mongodbs", "create", "mongo-3", "--member", "m-c", "--member", "m-b", "--member",
                "m-a",
            ],
        ),
        "mongodb mongo-3: primary m-c, secondaries m-b,m-a, epoch 1 (created)\n"
    );
    assert_eq!(
        api_ok(&c, api, &["mongodbs", "delete", "mongo-3"]),
        "mongodb mongo-3 deleted\n"
    );
    api_refused(&c, api, &["mongodbs", "delete", "mongo-3"], "not-found");
    assert_eq!(
        services_state(&c, api),
        vec![Value::Array(vec![]); 3],
        "everything deleted"
    );
}

#[test]
fn operators_manage_cache_clusters_over_the_http_api() {
    let (mut c, api) = start_cluster_of_with_api("cache", CLUSTER_3, &HOSTS_3);
    run_vms(
        &c,
        api,
        &[
            ("c-a", "hv-01"),
            ("c-b", "hv-02"),
            ("c-c", "hv-03"),
            ("c-d", "hv-01"),
            ("c-e", "hv-02"),
            ("c-f", "hv-02"),
        ],
    );

    // Created through the CLI: two shards, each master first.
    assert_eq!(
        api_ok(
            &c,
            api,
            &["caches", "create", "cache-1", "--shard", "c-a,c-b", "--shard", "c-c,c-d",],
        ),
        "cache cache-1: shard 1 master c-a, replicas c-b; shard 2 master c-c, replicas c-d; \
         state ok (created)\n"
    );
    c.wait_for(
        "controller",
        &["api: cache cache-1 created: shard 1: master c-a on hv-01, replica c-b on hv-02; shard 2: master c-c on hv-03, replica c-d on hv-01"],
    );

    // Read back over HTTP and as the CLI's table.
    let (status, v) = http(api, API_TOKEN, "GET", "/v1/caches/cache-1", None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "ok", "{v}");
    assert_eq!(v["shards"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["shards"][1]["master"], "c-c", "{v}");
    assert_eq!(v["shards"][1]["epoch"], 1, "{v}");
    assert_eq!(v["shards"][1]["members"][1]["role"], "replica", "{v}");
    let (status, list) = http(api, API_TOKEN, "GET", "/v1/caches", None);
    assert_eq!((status, list), (200, Value::Array(vec![v.clone()])));
    assert_eq!(
        cells(&api_ok(&c, api, &["caches", "describe", "cache-1"])),
        [
            vec!["NAME", "STATE", "SHARD", "EPOCH", "VM", "ROLE", "HEALTH", "HOST", "DEGRADED"],
            vec!["cache-1", "ok", "1", "1", "c-a", "master", "healthy", "hv-01", "-"],
            vec!["cache-1", "ok", "1", "1", "c-b", "replica", "healthy", "hv-02", "-"],
            vec!["cache-1", "ok", "2", "1", "c-c", "master", "healthy", "hv-03", "-"],
            vec!["cache-1", "ok", "2", "1", "c-d", "replica", "healthy", "hv-01", "-"],
        ]
    );

    // Refusals, typed and naming the field; none changes anything.
    let before = services_state(&c, api);
    for (method, path, body, want, names) in [
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":[["c-e","vm-1"],["vm-1"]]}"#),
            (400, "invalid-request"),
            "shards[1]: a shard is a master and 1 or 2 replicas (2 or 3 VMs), not 1",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":[]}"#),
            (400, "invalid-request"),
            "shards: a cache cluster has 1 to 16 shards, not 0",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":[["c-e","vm-404"]]}"#),
            (404, "not-found"),
            "shards[0][1]: no vm named vm-404",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":[["c-e","c-b"]]}"#),
            (409, "in-use"),
            "shards[0][1]: vm c-b is already a member of cache cache-1",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":[["vm-1","c-e"],["c-e","vm-1"]]}"#),
            (400, "invalid-request"),
            "shards[1][0]: vm c-e is given twice",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-1","shards":[["vm-1","c-e"]]}"#),
            (409, "exists"),
            "name: cache cache-1 already exists",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":[["vm-1","c-e"],["c-e","x;rm"]]}"#),
            (400, "invalid-request"),
            "shards[1][1]: expected a name",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"<b>","shards":[["vm-1","c-e"]]}"#),
            (400, "invalid-request"),
            "name: expected a name",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":[["vm-1","c-e"]],"slots":16384}"#),
            (400, "invalid-request"),
            "slots",
        ),
        (
            "POST",
            "/v1/caches",
            Some(r#"{"name":"cache-2","shards":["vm-1"]}"#),
            (400, "invalid-request"),
            "shards",
        ),
        (
            "GET",
            "/v1/caches/nope",
            None,
            (404, "not-found"),
            "no cache named nope",
        ),
        (
            "DELETE",
            "/v1/caches/nope",
            None,
            (404, "not-found"),
            "name: no cache named nope",
        ),
    ] {
        let (s, code, message) = call(api, method, path, body);
        assert_eq!((s, code.as_str()), want, "{method} {path}: {message}");
        assert!(message.contains(names), "{method} {path}: {message}");
        assert!(
            !message.contains('<') && !message.contains("x;rm"),
            "echoed: {message}"
        );
    }
    let err = api_refused(
        &c,
        api,
        &["caches", "create", "cache-2", "--shard", "c-e,c-f"],
        "invalid-request",
    );
    assert!(
        err.contains("shards[0][1]: vm c-f is on hv-02 with c-e: members must be on different hosts (anti-affinity)"),
        "{err}"
    );
    api_refused(&c, api, &["caches", "delete", "nope"], "not-found");
    c.wait_for(
        "controller",
        &["api: refused: shards[0][1]: vm c-b is already a member of cache cache-1"],
    );
    assert_eq!(
        services_state(&c, api),
        before,
        "a refusal changed a service"
    );

    // A second cluster on the VMs left, over HTTP: 201.
    let (status, v) = http(
        api,
        API_TOKEN,
        "POST",
        "/v1/caches",
        Some(r#"{"name":"cache-2","shards":[["c-e","vm-1"]]}"#),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["shards"][0]["master"], "c-e", "{v}");
    let j: Value = serde_json::from_str(&api_ok(
        &c,
        api,
        &["--output", "json", "caches", "describe"],
    ))
    .unwrap();
    let names: Vec<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cache-1", "cache-2"], "{j}");

    // Deleted, through the CLI and over HTTP; their VMs stay.
    assert_eq!(
        api_ok(&c, api, &["caches", "delete", "cache-1"]),
        "cache cache-1 deleted\n"
    );
    let (status, v) = http(api, API_TOKEN, "DELETE", "/v1/caches/cache-2", None);
    assert_eq!((status, &v), (200, &serde_json::json!({"name": "cache-2"})));
    c.wait_for("controller", &["api: cache cache-2 deleted; its VMs stay"]);
    let (s, code, message) = call(api, "DELETE", "/v1/caches/cache-2", None);
    assert_eq!((s, code.as_str()), (404, "not-found"), "{message}");
    assert_eq!(
        services_state(&c, api),
        vec![Value::Array(vec![]); 3],
        "everything deleted"
    );
    let out = api_ok(&c, api, &["instances", "list", "--state", "running"]);
    for vm in ["c-a", "c-b", "c-c", "c-d", "c-e", "c-f", "vm-1"] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{vm} "))),
            "{out}"
        );
    }
}
