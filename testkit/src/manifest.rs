//! Test pods as manifests: one builder for the suite and the runtime's
//! integration tests. Anything the typed setters do not cover is set as
//! written with [`PodManifest::spec_field`] and [`ContainerSpec::field`].

use serde_json::{json, Map, Value};

/// Where the pods of a run get their names, default image and labels
/// from: the suite's context implements it, so `PodManifest::new(ctx, ..)`
/// names pods the way the suite does.
pub trait Fixture {
    /// A unique pod name made from `prefix`.
    fn pod_name(&self, prefix: &str) -> String;
    /// The image a container runs when the test names none.
    fn default_image(&self) -> String;
    /// Labels every pod of the run carries.
    fn labels(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The `imagePullPolicy` of containers that set none, if any.
    fn default_pull_policy(&self) -> Option<String> {
        None
    }
}

/// A container of a test pod. By default it sleeps, so tests can exec into it.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    name: String,
    image: String,
    command: Vec<String>,
    limits: Vec<(String, String)>,
    privileged: bool,
    /// Further container fields, set as written (`securityContext`, ...).
    fields: Map<String, Value>,
}

impl ContainerSpec {
    /// A container of the fixture's default image.
    pub fn new(fx: &impl Fixture, name: &str) -> ContainerSpec {
        ContainerSpec::of(name, &fx.default_image())
    }

    /// A container named `name` running `image`, sleeping for an hour.
    pub fn of(name: &str, image: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            command: vec!["sleep".into(), "3600".into()],
            limits: Vec::new(),
            privileged: false,
            fields: Map::new(),
        }
    }

    /// Sets a container field to a JSON value, replacing what the builder
    /// would write there.
    pub fn field(mut self, key: &str, value: Value) -> ContainerSpec {
        self.fields.insert(key.into(), value);
        self
    }

    /// Sets the fields of a YAML mapping (`"readinessProbe:\n  exec: ..."`),
    /// for tests that read best with the manifest as written.
    ///
    /// # Panics
    /// When `yaml` is not a mapping: a broken test, not a runtime's fault.
    pub fn fields_yaml(mut self, yaml: &str) -> ContainerSpec {
        match serde_norway::from_str::<Value>(yaml) {
            Ok(Value::Object(fields)) => self.fields.extend(fields),
            Ok(Value::Null) => {}
            other => panic!("container fields {yaml:?} are not a YAML mapping: {other:?}"),
        }
        self
    }

    pub fn image(mut self, image: &str) -> ContainerSpec {
        self.image = image.into();
        self
    }

    pub fn command<S: AsRef<str>>(mut self, argv: &[S]) -> ContainerSpec {
        self.command = argv.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// `command: [sh, -c, script]`.
    pub fn sh(self, script: &str) -> ContainerSpec {
        self.command(&["sh", "-c", script])
    }

    /// `resources.limits[resource] = quantity`.
    pub fn limit(mut self, resource: &str, quantity: &str) -> ContainerSpec {
        self.limits.push((resource.into(), quantity.into()));
        self
    }

    pub fn privileged(mut self, privileged: bool) -> ContainerSpec {
        self.privileged = privileged;
        self
    }

    pub fn to_json(&self) -> Value {
        let mut c = Map::new();
        c.insert("name".into(), json!(self.name));
        c.insert("image".into(), json!(self.image));
        c.insert("command".into(), json!(self.command));
        if !self.limits.is_empty() {
            c.insert("resources".into(), json!({ "limits": pairs(&self.limits) }));
        }
        if self.privileged {
            c.insert("securityContext".into(), json!({"privileged": true}));
        }
        c.extend(self.fields.clone());
        Value::Object(c)
    }
}

/// A test pod's manifest.
#[derive(Clone, Debug)]
pub struct PodManifest {
    pub name: String,
    labels: Vec<(String, String)>,
    init_containers: Vec<ContainerSpec>,
    containers: Vec<ContainerSpec>,
    hostname: Option<String>,
    share_process_namespace: bool,
    host_network: bool,
    pod_limits: Vec<(String, String)>,
    grace_period: u32,
    pull_policy: Option<String>,
    /// Further `spec` fields, set as written (`securityContext`, `volumes`).
    spec_fields: Map<String, Value>,
}

impl PodManifest {
    /// A pod with a unique name made from `prefix`, labelled and defaulted
    /// as the fixture says.
    pub fn new(fx: &impl Fixture, prefix: &str) -> PodManifest {
        let mut m = PodManifest::named(&fx.pod_name(prefix));
        m.labels = fx.labels();
        m.pull_policy = fx.default_pull_policy();
        m
    }

    /// A pod named exactly `name`, with no labels.
    pub fn named(name: &str) -> PodManifest {
        PodManifest {
            name: name.into(),
            labels: Vec::new(),
            init_containers: Vec::new(),
            containers: Vec::new(),
            hostname: None,
            share_process_namespace: false,
            host_network: false,
            pod_limits: Vec::new(),
            // Deleting a test pod should not wait for sleeping containers.
            grace_period: 0,
            pull_policy: None,
            spec_fields: Map::new(),
        }
    }

    /// A pod of sleeping containers of the fixture's image with these names.
    pub fn sleepers(fx: &impl Fixture, prefix: &str, containers: &[&str]) -> PodManifest {
        containers
            .iter()
            .fold(PodManifest::new(fx, prefix), |m, c| {
                m.container(ContainerSpec::new(fx, c))
            })
    }

    /// Sets a `spec` field to a JSON value, replacing what the builder
    /// would write there.
    pub fn spec_field(mut self, key: &str, value: Value) -> PodManifest {
        self.spec_fields.insert(key.into(), value);
        self
    }

    pub fn container(mut self, c: ContainerSpec) -> PodManifest {
        self.containers.push(c);
        self
    }

    pub fn init_container(mut self, c: ContainerSpec) -> PodManifest {
        self.init_containers.push(c);
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> PodManifest {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// `spec.restartPolicy`.
    pub fn restart_policy(self, policy: &str) -> PodManifest {
        self.spec_field("restartPolicy", json!(policy))
    }

    /// `spec.terminationGracePeriodSeconds` (0 unless set).
    pub fn grace_period(mut self, seconds: u32) -> PodManifest {
        self.grace_period = seconds;
        self
    }

    pub fn hostname(mut self, hostname: &str) -> PodManifest {
        self.hostname = Some(hostname.into());
        self
    }

    pub fn share_process_namespace(mut self) -> PodManifest {
        self.share_process_namespace = true;
        self
    }

    /// `spec.hostNetwork: true`: the pod uses the node's network namespace.
    pub fn host_network(mut self) -> PodManifest {
        self.host_network = true;
        self
    }

    /// Pod-level `spec.resources.limits[resource] = quantity`.
    pub fn pod_limit(mut self, resource: &str, quantity: &str) -> PodManifest {
        self.pod_limits.push((resource.into(), quantity.into()));
        self
    }

    pub fn to_json(&self) -> Value {
        let mut spec = Map::new();
        if !self.init_containers.is_empty() {
            spec.insert(
                "initContainers".into(),
                Value::Array(
                    self.init_containers
                        .iter()
                        .map(ContainerSpec::to_json)
                        .collect(),
                ),
            );
        }
        spec.insert(
            "containers".into(),
            Value::Array(self.containers.iter().map(ContainerSpec::to_json).collect()),
        );
        if let Some(h) = &self.hostname {
            spec.insert("hostname".into(), json!(h));
        }
        if self.share_process_namespace {
            spec.insert("shareProcessNamespace".into(), json!(true));
        }
        if self.host_network {
            spec.insert("hostNetwork".into(), json!(true));
        }
        spec.insert(
            "terminationGracePeriodSeconds".into(),
            json!(self.grace_period),
        );
        if !self.pod_limits.is_empty() {
            spec.insert(
                "resources".into(),
                json!({ "limits": pairs(&self.pod_limits) }),
            );
        }
        spec.extend(self.spec_fields.clone());
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(self.name));
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), Value::Object(pairs(&self.labels)));
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": spec,
        })
    }

    /// The manifest as YAML, every container without a pull policy given
    /// the fixture's default one.
    pub fn to_yaml(&self) -> String {
        to_yaml(self.to_json(), self.pull_policy.as_deref())
    }
}

fn pairs(kv: &[(String, String)]) -> Map<String, Value> {
    kv.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
}

/// `manifest` as YAML; with `pull_policy`, every container (init or app)
/// that sets no `imagePullPolicy` gets that one.
pub fn to_yaml(mut manifest: Value, pull_policy: Option<&str>) -> String {
    if let Some(policy) = pull_policy {
        for list in ["initContainers", "containers"] {
            if let Some(containers) = manifest["spec"][list].as_array_mut() {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    c.entry("imagePullPolicy").or_insert_with(|| json!(policy));
                }
            }
        }
    }
    // Serialising a JSON value cannot fail; fall back to JSON (valid YAML
    // too) rather than panic if it ever did.
    serde_norway::to_string(&manifest).unwrap_or_else(|_| manifest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Suite;

    impl Fixture for Suite {
        fn pod_name(&self, prefix: &str) -> String {
            format!("{prefix}-1")
        }
        fn default_image(&self) -> String {
            "probe".into()
        }
        fn labels(&self) -> Vec<(String, String)> {
            vec![("part-of".into(), "suite".into())]
        }
        fn default_pull_policy(&self) -> Option<String> {
            Some("IfNotPresent".into())
        }
    }

    #[test]
    fn a_fixture_names_labels_and_defaults_the_pod() {
        let m = PodManifest::sleepers(&Suite, "uts", &["a", "b"]).hostname("h");
        let v: Value = serde_norway::from_str(&m.to_yaml()).unwrap();
        assert_eq!(v["metadata"]["name"], "uts-1");
        assert_eq!(v["metadata"]["labels"]["part-of"], "suite");
        assert_eq!(v["spec"]["hostname"], "h");
        assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 0);
        for c in v["spec"]["containers"].as_array().unwrap() {
            assert_eq!(c["image"], "probe");
            assert_eq!(c["imagePullPolicy"], "IfNotPresent");
            assert_eq!(c["command"], json!(["sleep", "3600"]));
        }
    }

    #[test]
    fn a_named_pod_is_written_as_built() {
        let m = PodManifest::named("p")
            .restart_policy("Never")
            .grace_period(30)
            .init_container(ContainerSpec::of("init", "bb").sh("exit 0"))
            .container(
                ContainerSpec::of("app", "bb")
                    .limit("memory", "64Mi")
                    .fields_yaml(
                        "ports: [{containerPort: 80}]\nreadinessProbe:\n  tcpSocket: {port: 80}\n",
                    ),
            );
        let v = m.to_json();
        assert!(v["metadata"].get("labels").is_none());
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(
            v["spec"]["initContainers"][0]["command"],
            json!(["sh", "-c", "exit 0"])
        );
        let app = &v["spec"]["containers"][0];
        assert_eq!(app["resources"]["limits"]["memory"], "64Mi");
        assert_eq!(app["ports"][0]["containerPort"], 80);
        assert_eq!(app["readinessProbe"]["tcpSocket"]["port"], 80);
        assert!(!m.to_yaml().contains("imagePullPolicy"));
    }
}
