//! Load balancers through the real daemons' API and the CLI: an external
//! and an internal one, a listener, a backend put in service by the
//! controller's health checks (from the agents' reports), refusals that
//! change nothing, and taking it all apart.

use super::*;

/// Every load balancer and EIP, as JSON, to compare before and after
/// refusals.
fn lb_state(c: &Cluster, api: u16) -> Vec<Value> {
    json_lists(
        c,
        api,
        &[&["load-balancers", "describe"], &["eips", "list"]],
    )
}

#[test]
fn operators_manage_load_balancers_through_the_cli() {
    let (mut c, api) = start_cluster_with_api("lb");
    for args in [
        &["routers", "create", "r1"][..],
        &["vxnets", "create", "net-1", "--network", "10.1.2.0"],
        &["routers", "join", "r1", "--vxnet", "net-1"],
        &["vxnets", "join", "net-1", "--instance", "vm-1"],
        &["eips", "allocate", "eip-1", "--kind", "internet"],
    ] {
        api_ok(&c, api, args);
    }

    // An external LB on the EIP, a listener checked every second, vm-1
    // behind it: new until two good checks put it in service.
    assert_eq!(
        api_ok(
            &c,
            api,
            &[
                "load-balancers",
                "create",
                "lb-1",
                "--kind",
                "external",
                "--eip",
                "eip-1"
            ]
        ),
        "load balancer lb-1 created: external at 203.0.113.1\n"
    );
    assert_eq!(
        api_ok(
            &c,
            api,
            &[
                "load-balancers",
                "add-listener",
                "lb-1",
                "--port",
                "80",
                "--protocol",
                "http",
                "--check-interval-ms",
                "1000"
            ]
        ),
        "load balancer lb-1 listens on port 80 (http, round-robin; health check every 1000 ms, 2 in, 3 out)\n"
    );
    let out = api_ok(
        &c,
        api,
        &[
            "load-balancers",
            "add-backend",
            "lb-1",
            "--listener",
            "80",
            "--instance",
            "vm-1",
        ],
    );
    assert_eq!(
        out,
        "vm vm-1 port 80 (weight 1) added to load balancer lb-1 listener 80: new\n"
    );
    c.wait_for(
        "controller",
        &["load balancer lb-1 listener 80: backend vm-1 in service after 2 good checks"],
    );
    // An internal one on the vxnet: the next address by the policy.
    let out = api_ok(
        &c,
        api,
        &[
            "load-balancers",
            "create",
            "lb-2",
            "--kind",
            "internal",
            "--vxnet",
            "net-1",
        ],
    );
    assert_eq!(out, "load balancer lb-2 created: internal at 10.1.2.2\n");

    assert_eq!(
        cells(&api_ok(&c, api, &["load-balancers", "describe"])),
        [
            vec!["NAME", "KIND", "ADDRESS", "LISTENER", "BACKEND", "WEIGHT", "HEALTH"],
            vec![
                "lb-1",
                "external",
                "203.0.113.1",
                "80/http",
                "vm-1:80",
                "1",
                "in-service"
            ],
            vec!["lb-2", "internal", "10.1.2.2", "-", "-", "-", "-"],
        ]
    );
    let v: Value = serde_json::from_str(&api_ok(
        &c,
        api,
        &[
            "--output",
            "json",
            "load-balancers",
            "describe",
            "--instance",
            "vm-1",
        ],
    ))
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["eip"], "eip-1");
    let l = &v[0]["listeners"][0];
    assert_eq!(l["health_check"]["interval_ms"], 1000, "{v}");
    assert_eq!(l["backends"][0]["health"], "in-service", "{v}");
    assert_eq!(l["backends"][0]["passes"], 2, "{v}");
    let (status, v) = http(api, API_TOKEN, "GET", "/v1/load-balancers/lb-2", None);
    assert_eq!((status, v["vxnet"].as_str()), (200, Some("net-1")), "{v}");
    let (_, v) = http(api, API_TOKEN, "GET", "/v1/eips/eip-1", None);
    assert_eq!(v["load_balancer"], "lb-1", "{v}");

    // Refusals through the CLI, each naming its field and changing nothing.
    let before = lb_state(&c, api);
    let lb1 = |rest: &[&'static str]| {
        let mut a = vec!["load-balancers"];
        a.extend_from_slice(rest);
        a
    };
    for (args, code, says) in [
        (
            lb1(&["add-listener", "lb-1", "--port", "80"]),
            "exists",
            "port: load balancer lb-1 already has a listener on port 80",
        ),
        (
            lb1(&["add-listener", "lb-1", "--port", "0"]),
            "invalid-request",
            "port: 0 is out of range",
        ),
        (
            lb1(&[
                "add-listener",
                "lb-1",
                "--port",
                "81",
                "--unhealthy-threshold",
                "0",
            ]),
            "invalid-request",
            "health_check.unhealthy_threshold: 0 is out of range",
        ),
        (
            lb1(&[
                "add-backend",
                "lb-1",
                "--listener",
                "81",
                "--instance",
                "vm-1",
            ]),
            "not-found",
            "listener: load balancer lb-1 has no listener on port 81",
        ),
        (
            lb1(&[
                "add-backend",
                "lb-1",
                "--listener",
                "80",
                "--instance",
                "nope",
            ]),
            "not-found",
            "no vm named nope",
        ),
        (
            lb1(&[
                "add-backend",
                "lb-1",
                "--listener",
                "80",
                "--instance",
                "vm-1",
            ]),
            "exists",
            "vm: vm-1 is already a backend",
        ),
        (
            lb1(&[
                "add-backend",
                "lb-1",
                "--listener",
                "80",
                "--instance",
                "vm-1",
                "--weight",
                "0",
            ]),
            "invalid-request",
            "weight: 0 is out of range",
        ),
        (
            lb1(&["create", "lb-3", "--kind", "external"]),
            "invalid-request",
            "eip: an external load balancer needs an eip",
        ),
        (
            lb1(&["create", "lb-3", "--kind", "external", "--eip", "eip-1"]),
            "already-associated",
            "eip eip-1 is already associated with load balancer lb-1",
        ),
        (
            lb1(&["create", "lb-3", "--kind", "sideways"]),
            "invalid-request",
            "kind",
        ),
        (
            lb1(&["create", "<b>x</b>", "--kind", "external"]),
            "invalid-request",
            "name: expected a name",
        ),
        (
            lb1(&[
                "add-backend",
                "lb-1",
                "--listener",
                "80",
                "--instance",
                "<i>",
            ]),
            "invalid-request",
            "instance: expected a name",
        ),
        (
            lb1(&["describe", "nope"]),
            "not-found",
            "no load balancer named nope",
        ),
        (
            lb1(&["delete", "nope"]),
            "not-found",
            "no load balancer named nope",
        ),
        (
            lb1(&["remove-listener", "lb-1", "--port", "8080"]),
            "not-found",
            "no listener on port 8080",
        ),
        (
            lb1(&[
                "remove-backend",
                "lb-1",
                "--listener",
                "80",
                "--instance",
                "vm-2",
            ]),
            "not-found",
            "vm: vm-2 is not a backend",
        ),
        (
            vec!["eips", "release", "eip-1"],
            "in-use",
            "eip eip-1 is in use: the address of load balancer lb-1",
        ),
        (
            vec!["eips", "associate", "--eip", "eip-1", "--instance", "vm-1"],
            "already-associated",
            "eip eip-1 is already associated with load balancer lb-1",
        ),
        (
            vec!["vxnets", "leave", "net-2", "--instance", "vm-1"],
            "not-found",
            "no vxnet named net-2",
        ),
    ] {
        let err = api_refused(&c, api, &args, code);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains('<'), "echoed: {err}");
    }
    // The same through raw HTTP: statuses and the named field.
    for (method, path, body, status, code, names) in [
        (
            "DELETE",
            "/v1/load-balancers/lb-1/listeners/eighty",
            None,
            400,
            "invalid-request",
            "port",
        ),
        (
            "POST",
            "/v1/load-balancers/lb-1/listeners",
            Some(r#"{"port":81,"colour":"red"}"#),
            400,
            "invalid-request",
            "colour",
        ),
        (
            "POST",
            "/v1/load-balancers/lb-1/listeners",
            Some(r#"{"port":81,"health_check":{"rise":2}}"#),
            400,
            "invalid-request",
            "rise",
        ),
        (
            "POST",
            "/v1/load-balancers",
            Some(r#"{"name":"lb-3","kind":"internal","vxnet":"net-1","ip":"10.1.2.247"}"#),
            400,
            "invalid-request",
            "247",
        ),
        (
            "GET",
            "/v1/load-balancers?kind=moon",
            None,
            400,
            "invalid-request",
            "kind",
        ),
        (
            "PUT",
            "/v1/load-balancers",
            None,
            405,
            "method-not-allowed",
            "PUT",
        ),
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
    let (s, v) = http(
        api,
        "not-the-token",
        "DELETE",
        "/v1/load-balancers/lb-1",
        None,
    );
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(
        lb_state(&c, api),
        before,
        "a refusal changed the load balancers"
    );

    // Taken apart again, in order.
    for (args, said) in [
        (
            lb1(&[
                "remove-backend",
                "lb-1",
                "--listener",
                "80",
                "--instance",
                "vm-1",
            ]),
            "vm vm-1 removed from load balancer lb-1 listener 80",
        ),
        (
            lb1(&["remove-listener", "lb-1", "--port", "80"]),
            "load balancer lb-1 no longer listens on port 80",
        ),
        (lb1(&["delete", "lb-1"]), "load balancer lb-1 deleted"),
        (lb1(&["delete", "lb-2"]), "load balancer lb-2 deleted"),
        (vec!["eips", "release", "eip-1"], "eip eip-1 released"),
    ] {
        assert_eq!(api_ok(&c, api, &args), format!("{said}\n"), "{args:?}");
    }
    assert_eq!(
        api_ok(&c, api, &["--output", "json", "load-balancers", "describe"]).trim(),
        "[]"
    );
    let log = c.logs();
    assert!(!log.contains(API_TOKEN), "{log}");
}
