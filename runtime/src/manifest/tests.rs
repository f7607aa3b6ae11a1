//! The manifest layer end to end: text in, pods or kubectl-shaped errors out.
//!
//! Every bad manifest has a snapshot of its full error text (reviewed by
//! hand) and a substring that must appear in it, so a wrong error fails even
//! when snapshots are being re-recorded.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rstest::rstest;

use super::*;

const SOURCE: &str = "fixtures/pod.yaml";

/// What `podlab apply` does with a manifest.
fn apply(text: &str, namespace: Option<&str>) -> Result<Vec<Document>, Error> {
    let mut docs = parse(text, SOURCE)?;
    for doc in &mut docs {
        match &mut doc.object {
            Object::Pod(pod) => {
                default_pod(pod, namespace)?;
                validate(pod)?;
            }
            Object::Secret(secret) => {
                default_secret(secret, namespace)?;
                validate_secret(secret)?;
            }
        }
    }
    Ok(docs)
}

#[rstest]
#[case::unknown_field(
    "unknown field \"spec.containers[0].imagee\" at line 8",
    r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    imagee: nginx
"#
)]
#[case::unknown_fields_everywhere(
    "\"metadata.lables\" at line 4",
    r#"apiVersion: v1
kind: Pod
metadata:
  lables: {app: web}
  name: web
spec:
  containers:
  - name: app
    image: nginx
    ports:
    - containerPort: 80
      protcol: TCP
  restartPolice: Never
status_: {}
"#
)]
#[case::unknown_field_json(
    "unknown field \"spec.containers[0].args_\" at line 8",
    r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "web"},
  "spec": {
    "containers": [{
      "name": "app", "image": "nginx",
      "args_": ["-g", "daemon off;"]
    }]
  }
}"#
)]
#[case::type_error_port(
    "spec.containers[0].ports[0].containerPort at line 10, column 22: invalid type: string \"abc\"",
    r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx
    ports:
    - containerPort: abc
"#
)]
#[case::type_error_json(
    "spec.terminationGracePeriodSeconds at line 5",
    r#"{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "web"},
 "spec": {
   "containers": [{"name": "app", "image": "nginx"}],
   "terminationGracePeriodSeconds": "30"
 }}
"#
)]
#[case::type_error_list_instead_of_map(
    "metadata.labels at line 5, column 3: invalid type: sequence, expected a map",
    r#"apiVersion: v1
kind: Pod
metadata:
  labels:
  - app
  name: web
spec:
  containers:
  - {name: app, image: nginx}
"#
)]
#[case::syntax_yaml_indentation(
    "invalid YAML at line 5",
    r#"apiVersion: v1
kind: Pod
metadata:
  name: web
   namespace: default
spec:
  containers:
  - {name: app, image: nginx}
"#
)]
#[case::syntax_yaml_in_document_3(
    "document 3 (line 12): invalid YAML at line 15, column 5: did not find expected ',' or '}', while parsing a flow mapping at line 14 column 11",
    r#"apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: app, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {containers: [{name: app, image: nginx}]}
---
# the third one is broken
apiVersion: v1
kind: Pod
metadata: {name: c
spec: {containers: [{name: app, image: nginx}]}
"#
)]
#[case::syntax_json(
    "invalid JSON at line 3, column 3: expected `,` or `}`",
    r#"{
  "apiVersion": "v1", "kind": "Pod"
  "metadata": {"name": "web"}
}"#
)]
#[case::syntax_json_second_object(
    "document 2 (line 5): invalid JSON at line 7",
    r#"{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "a"},
 "spec": {"containers": [{"name": "app", "image": "nginx"}]}}

{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "b"},
 "spec": {"containers": [{"name": "app", "image": "nginx"},]}}
"#
)]
#[case::duplicate_key(
    "duplicate entry with key \"name\"",
    r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  name: web2
spec:
  containers:
  - {name: app, image: nginx}
"#
)]
#[case::kind_deployment_in_document_2(
    "fixtures/pod.yaml: document 2 (line 11): kind \"Deployment\" is not supported",
    r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx
---

apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
"#
)]
#[case::api_version_wrong(
    "apiVersion \"apps/v1\" is not supported for kind Pod",
    r#"apiVersion: apps/v1
kind: Pod
metadata: {name: web}
"#
)]
#[case::kind_missing(
    "kind is missing",
    r#"apiVersion: v1
metadata: {name: web}
spec: {containers: [{name: app, image: nginx}]}
"#
)]
#[case::list_with_a_service(
    "items[1]: kind \"Service\" is not supported",
    r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web}
  spec: {containers: [{name: app, image: nginx}]}
- apiVersion: v1
  kind: Service
  metadata: {name: web}
"#
)]
#[case::list_item_unknown_field(
    "unknown field \"items[0].spec.containers[0].imagePullPolicyy\" at line 10",
    r#"apiVersion: v1
kind: List
metadata: {}
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web}
  spec:
    containers:
    - {name: app, image: nginx, imagePullPolicyy: Always}
"#
)]
#[case::not_an_object(
    "the document is a sequence",
    r#"- apiVersion: v1
  kind: Pod
"#
)]
#[case::name_missing(
    "metadata.name: Required value",
    r#"apiVersion: v1
kind: Pod
metadata: {labels: {app: web}}
spec: {containers: [{name: app, image: nginx}]}
"#
)]
#[case::name_and_namespace_invalid(
    "metadata.namespace: Invalid value: \"Team_A\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: Web_1, namespace: Team_A}
spec: {containers: [{name: app, image: nginx}]}
"#
)]
#[case::no_containers(
    "The Pod \"web\" is invalid: spec.containers: Required value",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec: {containers: []}
"#
)]
#[case::no_spec(
    "spec.containers: Required value",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
"#
)]
#[case::container_names(
    "spec.initContainers[0].name: Duplicate value: \"app\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  initContainers:
  - {name: app, image: busybox}
  - {name: "", image: busybox}
  containers:
  - {name: app, image: nginx}
  - {name: Side.Car, image: nginx}
  - {name: app, image: nginx}
"#
)]
#[case::image_missing(
    "spec.containers[0].image: Required value",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
"#
)]
#[case::quantities_malformed(
    "spec.containers[0].resources.limits.memory: Invalid value: \"12x\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: nginx
    resources:
      limits: {cpu: "1.2.3", memory: 12x, ephemeral-storage: "1 Gi"}
      requests: {cpu: "--1", memory: Mi}
"#
)]
#[case::quantities_negative_and_the_brief_example(
    "* spec.containers[0].resources.limits.memory: Invalid value: \"-1Gi\": must be greater than or equal to 0",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: nginx
    resources:
      limits: {memory: -1Gi, cpu: -100m}
  - name: app
    image: nginx
"#
)]
#[case::request_above_limit(
    "spec.containers[0].resources.requests.memory: Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: nginx
    resources:
      limits: {memory: 1Gi, cpu: 500m}
      requests: {memory: 2Gi, cpu: "0.5"}
"#
)]
#[case::unsupported_resources(
    "spec.containers[0].resources.limits.pids: Unsupported value: \"pids\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  resources:
    limits: {pids: "1.5", nvidia.com/gpu: 1}
    requests: {pids: 10}
  containers:
  - name: app
    image: nginx
    resources:
      limits: {pids: 64}
"#
)]
#[case::pod_level_pids_zero(
    "spec.resources.limits.pids: Invalid value: \"0\": must be greater than or equal to 1",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  resources:
    limits: {pids: 0, memory: 1Gi}
    requests: {memory: 2Gi}
  containers:
  - {name: app, image: nginx}
"#
)]
#[case::restart_policies(
    "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: Sometimes
  initContainers:
  - {name: sidecar, image: envoy, restartPolicy: Always}
  - {name: setup, image: busybox, restartPolicy: Never}
  containers:
  - {name: app, image: nginx, restartPolicy: Always}
"#
)]
#[case::volume_mount_not_found(
    "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - {name: cache, emptyDir: {}}
  containers:
  - name: app
    image: nginx
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: cache, mountPath: /cache}
    - {name: cache, mountPath: /cache, subPath: ../../etc}
    - {name: cache, mountPath: /abs, subPath: /etc}
    - {name: cache, mountPath: ""}
"#
)]
#[case::volumes(
    "spec.volumes[1].name: Duplicate value: \"data\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: data
    emptyDir: {}
  - name: data
    emptyDir: {medium: HugePages, sizeLimit: -1Mi}
  - name: host
    hostPath: {path: /etc/../root, type: Folder}
  - name: both
    emptyDir: {}
    configMap: {name: cfg}
  - name: Bad_Name
  - name: cfg
    configMap: {name: cfg}
  - name: nopath
    hostPath: {path: ""}
  containers:
  - {name: app, image: nginx}
"#
)]
#[case::mount_propagation(
    "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: host
    hostPath: {path: /srv, type: DirectoryOrCreate}
  containers:
  - name: app
    image: nginx
    volumeMounts:
    - {name: host, mountPath: /a, mountPropagation: Bidirectional}
    - {name: host, mountPath: /b, mountPropagation: Sideways}
    - {name: host, mountPath: /c, recursiveReadOnly: Enabled}
    - {name: host, mountPath: /d, readOnly: true, recursiveReadOnly: IfPossible, mountPropagation: HostToContainer}
    - {name: host, mountPath: /e, readOnly: true, recursiveReadOnly: Always}
    - {name: host, mountPath: /f, recursiveReadOnly: Disabled, mountPropagation: HostToContainer}
  - name: priv
    image: nginx
    securityContext: {privileged: true}
    volumeMounts:
    - {name: host, mountPath: /a, mountPropagation: Bidirectional}
    - {name: host, mountPath: /b, readOnly: true, recursiveReadOnly: Enabled, mountPropagation: None}
"#
)]
#[case::ports(
    "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: nginx
    ports:
    - {containerPort: 70000, protocol: HTTP}
    - {containerPort: 0}
    - {containerPort: 80, name: http, hostPort: -1}
    - {containerPort: 81, name: http}
    - {containerPort: 82, name: Metrics_Port}
"#
)]
#[case::env(
    "spec.containers[0].env[1].name: Invalid value: \"A=B\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: nginx
    env:
    - {name: "", value: x}
    - {name: A=B, value: x}
    - name: POD
      value: x
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
"#
)]
#[case::pod_fields(
    "spec.hostname: Invalid value: \"My_Host\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  hostname: My_Host
  subdomain: ok-sub
  terminationGracePeriodSeconds: -1
  activeDeadlineSeconds: 0
  dnsPolicy: Google
  containers:
  - {name: app, image: nginx, imagePullPolicy: Sometimes}
"#
)]
#[case::downward_api(
    "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\"",
    r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: info
    downwardAPI:
      defaultMode: 1000
      items:
      - {path: /abs, fieldRef: {fieldPath: metadata.name}}
      - {path: a/../b, fieldRef: {fieldPath: status.podIP}}
      - {path: cpu, resourceFieldRef: {resource: limits.cpu}}
      - {path: none}
  containers:
  - name: app
    image: nginx
    env:
    - {name: A, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}
    - {name: B, valueFrom: {fieldRef: {apiVersion: v2, fieldPath: metadata.name}}}
    - {name: C, valueFrom: {resourceFieldRef: {resource: limits.gpu}}}
    - {name: D, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 2}}}
    - {name: E, valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1m}}}
    - {name: F, valueFrom: {}}
"#
)]
fn bad_manifest_is_refused(#[case] expected: &str, #[case] text: &str) {
    let err = apply(text, None).expect_err("the manifest must be refused");
    let shown = err.to_string();
    assert!(
        shown.contains(expected),
        "expected {expected:?} in:\n{shown}"
    );
    let name = std::thread::current()
        .name()
        .and_then(|n| n.rsplit("::").next())
        .map(|n| {
            n.trim_start_matches("case_")
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '_')
                .to_string()
        })
        .expect("rstest names each case's thread");
    insta::assert_snapshot!(name, shown);
}

#[test]
fn a_document_over_one_mib_is_refused_before_parsing() {
    // Far over the limit and not even valid YAML: the size check comes first.
    let big = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    blob: \"{}\n",
        "x".repeat(MAX_DOCUMENT_BYTES)
    );
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: a}}\nspec: {{containers: [{{name: app, image: nginx}}]}}\n---\n{big}");
    let err = parse(&text, SOURCE).unwrap_err();
    match &err {
        Error::TooLarge { origin, size } => {
            assert_eq!((origin.document, origin.line), (2, 6));
            assert!(*size > MAX_DOCUMENT_BYTES);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    insta::assert_snapshot!(err.to_string());

    // Just under the limit is fine.
    let pad = MAX_DOCUMENT_BYTES - 200;
    let ok = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations: {{blob: \"{}\"}}\nspec: {{containers: [{{name: app, image: nginx}}]}}\n",
        "x".repeat(pad)
    );
    assert!(ok.len() <= MAX_DOCUMENT_BYTES);
    assert_eq!(parse(&ok, SOURCE).unwrap().len(), 1);
}

#[test]
fn namespace_flag_must_agree_with_the_manifest() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod}\nspec: {containers: [{name: app, image: nginx}]}\n";
    let err = apply(text, Some("dev")).unwrap_err();
    assert_eq!(
        err,
        Error::NamespaceMismatch {
            manifest: "prod".into(),
            requested: "dev".into()
        }
    );
    insta::assert_snapshot!(err.to_string());
    let docs = apply(text, Some("prod")).unwrap();
    assert_eq!(
        docs[0].pod().unwrap().metadata.namespace.as_deref(),
        Some("prod")
    );
}

#[test]
fn names_longer_than_kubernetes_allows() {
    let long_label = "a".repeat(64);
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}}}\nspec: {{containers: [{{name: {long_label}, image: nginx}}], hostname: {long_label}}}\n",
        "a".repeat(254)
    );
    let Err(Error::Invalid { problems, .. }) = apply(&text, None) else {
        panic!("expected validation errors");
    };
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["metadata.name", "spec.containers[0].name", "spec.hostname"]
    );
    assert!(problems.iter().all(|p| p.kind == FieldErrorKind::Invalid));
    // 253 and 63 are still fine, and a subdomain's parts may be long.
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}.b}}\nspec: {{containers: [{{name: {}, image: nginx}}]}}\n",
        "a".repeat(251),
        "a".repeat(63)
    );
    apply(&text, None).unwrap();
}

#[test]
fn validation_collects_every_problem_with_its_path() {
    let text = r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: nginx
    resources: {limits: {memory: -1Gi}}
  - name: app
"#;
    let Err(Error::Invalid {
        name: pod,
        problems,
        ..
    }) = apply(text, None)
    else {
        panic!("expected validation errors");
    };
    assert_eq!(pod, "web");
    let found: Vec<(&str, FieldErrorKind, Option<&str>)> = problems
        .iter()
        .map(|p| (p.path.as_str(), p.kind, p.value.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "spec.containers[0].resources.limits.memory",
                FieldErrorKind::Invalid,
                Some("\"-1Gi\"")
            ),
            // The defaulted request copies the bad limit: reported as well,
            // as the API server would.
            (
                "spec.containers[0].resources.requests.memory",
                FieldErrorKind::Invalid,
                Some("\"-1Gi\"")
            ),
            (
                "spec.containers[1].name",
                FieldErrorKind::Duplicate,
                Some("\"app\"")
            ),
            ("spec.containers[1].image", FieldErrorKind::Required, None),
        ]
    );
}

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

#[test]
fn validation_accepts_a_pod_before_defaulting() {
    let docs = parse(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  volumes: [{name: v}]\n  containers:\n  - name: app\n    image: nginx\n    ports: [{containerPort: 80}]\n",
        SOURCE,
    )
    .unwrap();
    validate(docs[0].pod().unwrap()).unwrap();
}

#[test]
fn a_good_pod_with_two_containers_and_limits() {
    let text = r#"# a comment before the document
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  restartPolicy: OnFailure
  resources:
    limits: {pids: 128, memory: 2Gi}
  volumes:
  - name: shared
  containers:
  - name: app
    image: nginx:1.27
    ports:
    - containerPort: 80
      name: http
    env:
    - {name: MODE, value: a}
    - {name: MODE, value: b}    # repeated names are allowed
    resources:
      limits: {cpu: 500m, memory: 256Mi}
      requests: {cpu: 0.25}
    volumeMounts:
    - {name: shared, mountPath: /usr/share/nginx/html, subPath: html}
  - name: side
    image: busybox
    command: [sh, -c, "sleep 3600"]
    volumeMounts:
    - {name: shared, mountPath: /data}
"#;
    let docs = apply(text, None).unwrap();
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!((doc.document, doc.item, doc.line), (1, None, 2));
    let pod = doc.pod().unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("web"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(
        spec.resources.as_ref().unwrap().limits,
        Some(BTreeMap::from([
            ("memory".to_string(), q("2Gi")),
            ("pids".to_string(), q("128")),
        ]))
    );
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "side"]);
    let app = &spec.containers[0];
    let resources = app.resources.as_ref().unwrap();
    assert_eq!(
        resources.limits,
        Some(BTreeMap::from([
            ("cpu".to_string(), q("500m")),
            ("memory".to_string(), q("256Mi")),
        ]))
    );
    // The YAML number 0.25 arrives as the quantity "0.25"; memory defaults
    // from its limit.
    assert_eq!(
        resources.requests,
        Some(BTreeMap::from([
            ("cpu".to_string(), q("0.25")),
            ("memory".to_string(), q("256Mi")),
        ]))
    );
    assert_eq!(app.ports.as_ref().unwrap()[0].container_port, 80);
    assert_eq!(app.env.as_ref().unwrap().len(), 2);
    assert_eq!(app.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let side = &spec.containers[1];
    assert_eq!(
        side.command.as_deref(),
        Some(&["sh".to_string(), "-c".to_string(), "sleep 3600".to_string()][..])
    );
    assert_eq!(side.image_pull_policy.as_deref(), Some("Always"));
    assert!(spec.volumes.as_ref().unwrap()[0].empty_dir.is_some());
}

#[test]
fn several_documents_skipping_empty_ones() {
    let text = r#"---
# nothing but a comment
---
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: app, image: nginx}]}
...
---
---

--- # the marker may carry a comment
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: team}
spec: {containers: [{name: app, image: nginx}]}
--- {apiVersion: v1, kind: Pod, metadata: {name: c}, spec: {containers: [{name: app, image: nginx}]}}
"#;
    let docs = parse(text, SOURCE).unwrap();
    let found: Vec<(&str, usize, usize)> = docs
        .iter()
        .map(|d| {
            (
                d.pod().unwrap().metadata.name.as_deref().unwrap(),
                d.document,
                d.line,
            )
        })
        .collect();
    assert_eq!(found, [("a", 1, 4), ("b", 2, 13), ("c", 3, 17)]);
    assert_eq!(
        docs[1].pod().unwrap().metadata.namespace.as_deref(),
        Some("team")
    );
}

#[test]
fn an_input_without_documents_is_an_empty_list() {
    assert_eq!(parse("", SOURCE).unwrap(), []);
    assert_eq!(parse("# only a comment\n---\n\n", SOURCE).unwrap(), []);
    assert_eq!(parse("~\n", SOURCE).unwrap(), []);
}

#[test]
fn json_objects_one_after_another() {
    let text = r#"{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "a"},
 "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}]}]}}
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b\u00e9\/"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
"#;
    let docs = parse(text, SOURCE).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!((docs[0].document, docs[0].line), (1, 1));
    assert_eq!((docs[1].document, docs[1].line), (2, 4));
    let port = &docs[0].pod().unwrap().spec.as_ref().unwrap().containers[0]
        .ports
        .as_ref()
        .unwrap()[0];
    assert_eq!(port.container_port, 8080);
    // JSON escapes decode as JSON says.
    assert_eq!(docs[1].pod().unwrap().metadata.name.as_deref(), Some("bé/"));
}

#[test]
fn json_errors_point_into_the_right_object() {
    // Both objects on one line: the column of the second one's field must
    // still be exact.
    let text = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}} {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": []}}"#;
    match parse(text, SOURCE).unwrap_err() {
        Error::Type {
            origin,
            path,
            line,
            column,
            ..
        } => {
            assert_eq!(origin.document, 2);
            assert_eq!(path.as_deref(), Some("metadata.labels"));
            assert_eq!(
                (line, column),
                (Some(1), Some(text.rfind('[').unwrap() + 1))
            );
        }
        other => panic!("expected a type error, got {other:?}"),
    }
}

#[test]
fn a_list_gives_its_items() {
    let text = r#"apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: app, image: nginx}]}
-
  apiVersion: v1
  kind: Pod
  metadata: {name: b}
  spec: {containers: [{name: app, image: nginx}]}
---
apiVersion: v1
kind: List
items: []
"#;
    let docs = parse(text, SOURCE).unwrap();
    let found: Vec<(&str, usize, Option<usize>, usize)> = docs
        .iter()
        .map(|d| {
            (
                d.pod().unwrap().metadata.name.as_deref().unwrap(),
                d.document,
                d.item,
                d.line,
            )
        })
        .collect();
    assert_eq!(found, [("a", 1, Some(0), 6), ("b", 1, Some(1), 10)]);
}

#[test]
fn structured_errors_for_callers() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: app\n    imagee: x\n    image: y\n  nodeSelectorr: {}\n";
    let Err(Error::UnknownField { origin, fields }) = parse(text, "-") else {
        panic!("expected unknown fields");
    };
    assert_eq!(
        origin,
        Origin {
            file: "-".into(),
            document: 1,
            line: 1
        }
    );
    assert_eq!(
        fields,
        [
            UnknownField {
                path: "spec.containers[0].imagee".into(),
                line: Some(7)
            },
            UnknownField {
                path: "spec.nodeSelectorr".into(),
                line: Some(9)
            },
        ]
    );

    let Err(Error::Kind {
        origin,
        kind,
        api_version,
        item,
    }) = parse("kind: ConfigMap\napiVersion: v1\n", "x.yaml")
    else {
        panic!("expected a kind error");
    };
    assert_eq!((origin.document, origin.line, item), (1, 1, None));
    assert_eq!(
        (kind.as_deref(), api_version.as_deref()),
        (Some("ConfigMap"), Some("v1"))
    );

    let Err(Error::Syntax {
        line,
        column,
        format,
        ..
    }) = parse("a: [\n", "x.yaml")
    else {
        panic!("expected a syntax error");
    };
    assert_eq!(format, Format::Yaml);
    assert!(line.is_some() && column.is_some());
}

#[rstest]
#[case(
    "spec.containers[0].ports[0].containerPort: invalid type: string \"abc\", expected i32",
    Some("spec.containers[0].ports[0].containerPort"),
    "invalid type: string \"abc\", expected i32"
)]
#[case(
    "invalid type: map, expected a string",
    None,
    "invalid type: map, expected a string"
)]
#[case(
    "metadata.labels.app.kubernetes.io/name: invalid type: sequence, expected a string",
    Some("metadata.labels.app.kubernetes.io/name"),
    "invalid type: sequence, expected a string"
)]
#[case("something odd", None, "something odd")]
fn serde_paths_are_split_from_messages(
    #[case] message: &str,
    #[case] path: Option<&str>,
    #[case] rest: &str,
) {
    assert_eq!(
        split_serde_path(message),
        (path.map(String::from), rest.to_string())
    );
}

#[test]
fn line_numbers_in_libyaml_context_are_shifted() {
    assert_eq!(
        shift_lines(
            "did not find expected key, while parsing a block mapping at line 2 column 1",
            10
        ),
        "did not find expected key, while parsing a block mapping at line 12 column 1"
    );
}

#[test]
fn host_files_dns_and_host_namespaces_are_validated_with_their_paths() {
    let text = r#"apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  hostPID: true
  hostIPC: true
  shareProcessNamespace: true
  securityContext:
    sysctls: [{name: kernel.shm_rmid_forced, value: "1"}]
  hostAliases:
  - {ip: 10.0.0.300, hostnames: [ok.example, Not_A_Name]}
  - {ip: "", hostnames: [x]}
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3, not-an-ip]
    searches: [a.example, "bad_domain", fqdn.example.]
    options: [{value: "1"}]
  containers:
  - {name: app, image: nginx}
"#;
    let shown = apply(text, None).expect_err("must be refused").to_string();
    for expected in [
        "spec.hostAliases[0].ip: Invalid value: \"10.0.0.300\"",
        "spec.hostAliases[0].hostnames[1]: Invalid value: \"Not_A_Name\"",
        "spec.hostAliases[1].ip: Required value",
        "spec.dnsConfig.nameservers: Invalid value",
        "must not have more than 3 nameservers",
        "spec.dnsConfig.nameservers[3]: Invalid value: \"not-an-ip\"",
        "spec.dnsConfig.searches[1]: Invalid value: \"bad_domain\"",
        "spec.dnsConfig.options[0].name: Required value",
        "spec.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
        "spec.securityContext.sysctls[0].name: Forbidden: \"kernel.shm_rmid_forced\"",
    ] {
        assert!(shown.contains(expected), "expected {expected:?} in:\n{shown}");
    }
    assert!(
        !shown.contains("searches[2]"),
        "a trailing dot is allowed:\n{shown}"
    );

    let many: Vec<String> = (0..33).map(|i| format!("d{i}.example")).collect();
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  dnsPolicy: None\n  dnsConfig: {{searches: [{}]}}\n  containers:\n  - {{name: app, image: nginx}}\n",
        many.join(", ")
    );
    let shown = apply(&text, None).expect_err("must be refused").to_string();
    assert!(
        shown.contains("must not have more than 32 search paths"),
        "{shown}"
    );
    assert!(
        shown.contains("spec.dnsConfig.nameservers: Required value"),
        "dnsPolicy None needs a nameserver:\n{shown}"
    );
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  dnsPolicy: None\n  containers:\n  - {name: app, image: nginx}\n";
    let shown = apply(text, None).expect_err("must be refused").to_string();
    assert!(shown.contains("spec.dnsConfig: Required value"), "{shown}");
}

#[test]
fn a_secret_and_a_pod_in_one_file_are_both_read() {
    let text = r#"apiVersion: v1
kind: Secret
metadata:
  name: login
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {}}'
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  imagePullSecrets: [{name: login}]
  containers:
  - name: app
    image: nginx
"#;
    let docs = apply(text, Some("team")).unwrap();
    let Object::Secret(secret) = &docs[0].object else {
        panic!("a Secret first");
    };
    assert_eq!(secret.metadata.namespace.as_deref(), Some("team"));
    assert_eq!(secret.data.as_ref().unwrap().len(), 1);
    assert_eq!(docs[1].pod().unwrap().metadata.name.as_deref(), Some("web"));
    let Err(Error::UnknownField { fields, .. }) = apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringdata: {a: b}\n",
        None,
    ) else {
        panic!("an unknown field");
    };
    assert_eq!(fields[0].path, "stringdata");
}
