//! The files of `deploy/` hold what they promise: every configuration passes `berth config check` without a
//! warning (a misspelt key is a warning), the compose files run berth's image with a configuration
//! beside them mounted where the image reads it and its data where the image keeps it, the mirror's
//! daemon.json points at the port the compose file publishes, the systemd unit passes
//! `systemd-analyze verify`, and the Kubernetes manifest's probes, user and mounts are the image's.

use std::path::{Path, PathBuf};
use std::process::Command;

use saphyr::{LoadableYamlNode, Yaml};

/// The image every deployment runs (what scripts/image names it).
const IMAGE: &str = "localhost/berth:latest";
/// The image's user (scripts/image, Dockerfile).
const USER: i64 = 65532;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(text: &str) -> Vec<Yaml<'_>> {
    Yaml::load_from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

/// `berth config check` of `config` with `env` (and no other `REGISTRY_*`): must pass without a
/// warning; returns the effective configuration it printed.
fn config_check(config: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["config", "check"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("berth config check: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "berth config check {} ({}):\n{stderr}",
        config.display(),
        out.status
    );
    stdout
}

#[test]
fn every_configuration_in_deploy_passes_berth_config_check() {
    // The image's own: registry:3's conventions.
    let image = config_check(&deploy("image/config.yml"), &[]);
    assert!(image.contains("addr: \"0.0.0.0:5000\""), "{image}");
    assert!(
        image.contains("rootdirectory: /var/lib/registry"),
        "{image}"
    );
    let private = config_check(&deploy("private/config.yml"), &[]);
    assert!(
        private.contains("certificate: /certs/domain.crt")
            && private.contains("path: /auth/htpasswd"),
        "{private}"
    );
    let mirror = config_check(&deploy("mirror/config.yml"), &[]);
    assert!(
        mirror.contains("remoteurl: \"https://registry-1.docker.io\"")
            || mirror.contains("remoteurl: https://registry-1.docker.io"),
        "{mirror}"
    );
    let readonly = config_check(&deploy("readonly-mirror/config.yml"), &[]);
    assert!(
        readonly.contains("readonly:\n      enabled: true"),
        "{readonly}"
    );
    // The Kubernetes ConfigMap's configuration, as the pod will read it.
    let manifest = read(&deploy("kubernetes/berth.yaml"));
    let docs = yaml(&manifest);
    let map = of_kind(&docs, "ConfigMap");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let path = dir.path().join("config.yml");
    std::fs::write(&path, text(&map["data"]["config.yml"])).unwrap_or_else(|e| panic!("{e}"));
    config_check(&path, &[]);
}

#[test]
fn compose_files_run_the_image_with_the_configuration_beside_them() {
    for setup in ["private", "mirror", "readonly-mirror"] {
        let file = deploy(&format!("{setup}/compose.yml"));
        let source = read(&file);
        let docs = yaml(&source);
        let services = docs[0]["services"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{}: no services", file.display()));
        assert_eq!(services.len(), 1, "{}", file.display());
        let (_, service) = services.iter().next().unwrap();
        assert_eq!(text(&service["image"]), IMAGE, "{}", file.display());
        let volumes: Vec<&str> = seq(&service["volumes"]).iter().map(text).collect();
        // The configuration beside the compose file, where the image reads it.
        let config = volumes
            .iter()
            .find_map(|v| v.strip_suffix(":/etc/distribution/config.yml:ro"))
            .unwrap_or_else(|| panic!("{}: no config.yml mounted: {volumes:?}", file.display()));
        let config = file.parent().unwrap().join(config.trim_start_matches("./"));
        assert!(
            volumes.iter().any(|v| v.ends_with(":/var/lib/registry")),
            "{}: no volume for the data: {volumes:?}",
            file.display()
        );
        // Its variables are berth's and keep the configuration valid.
        let env: Vec<(String, String)> = match service.as_mapping_get("environment") {
            Some(env) => env
                .as_mapping()
                .unwrap_or_else(|| panic!("{}: environment as a mapping", file.display()))
                .keys()
                .map(|k| (text(k).to_owned(), "set-by-compose".to_owned()))
                .collect(),
            None => Vec::new(),
        };
        for (key, _) in &env {
            assert!(key.starts_with("REGISTRY_"), "{}: {key}", file.display());
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let effective = config_check(&config, &env);
        // The port published is the one berth listens on in the container.
        let port = effective
            .lines()
            .find_map(|l| l.trim().strip_prefix("addr: \"0.0.0.0:"))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{}: berth does not listen on :port", config.display()));
        let ports: Vec<&str> = seq(&service["ports"]).iter().map(text).collect();
        assert!(
            ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{}: {ports:?} publishes no port {port}",
            file.display()
        );
        if setup == "mirror" {
            // Each docker host's daemon.json points at the port the mirror publishes.
            let daemon: serde_json::Value =
                serde_json::from_str(&read(&deploy("mirror/daemon.json")))
                    .unwrap_or_else(|e| panic!("daemon.json: {e}"));
            let mirror = daemon["registry-mirrors"][0].as_str().unwrap_or_default();
            let published = ports[0].split(':').next().unwrap_or_default();
            assert!(
                mirror.ends_with(&format!(":{published}")),
                "daemon.json's mirror {mirror} is not on port {published}"
            );
        }
    }
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = read(&deploy("systemd/berth.service"));
    assert!(
        unit.contains("ExecStart=/usr/local/bin/berth serve"),
        "{unit}"
    );
    // The state directory is the image configuration's data directory.
    assert!(unit.contains("StateDirectory=registry\n"), "{unit}");
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (deploy/systemd is verified where it is)"
        );
        return;
    }
    // verify checks that ExecStart's program exists: the same unit, with this test's berth there.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let copy = dir.path().join("berth.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/berth", env!("CARGO_BIN_EXE_berth")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // An unknown or misspelt setting is only a warning; it fails here too.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify ({}):\n{stderr}",
        out.status
    );
}

#[test]
fn the_kubernetes_example_probes_and_mounts_what_the_image_has() {
    let manifest = read(&deploy("kubernetes/berth.yaml"));
    let docs = yaml(&manifest);
    let mut kinds: Vec<&str> = docs.iter().map(|d| text(&d["kind"])).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "Service"
        ]
    );
    let deployment = of_kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"].as_integer(), Some(USER));
    let container = &seq(&pod["containers"])[0];
    assert_eq!(text(&container["image"]), IMAGE);
    let port = &seq(&container["ports"])[0];
    assert_eq!(port["containerPort"].as_integer(), Some(5000));
    let port_name = text(&port["name"]);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(text(&get["path"]), path, "{probe}");
        assert_eq!(text(&get["port"]), port_name, "{probe}");
    }
    // The ConfigMap lands at /etc/distribution/config.yml, the claim at /var/lib/registry.
    let mounts: Vec<(&str, &str)> = seq(&container["volumeMounts"])
        .iter()
        .map(|m| (text(&m["name"]), text(&m["mountPath"])))
        .collect();
    let volume = |mount_path: &str| {
        let name = mounts
            .iter()
            .find(|(_, p)| *p == mount_path)
            .map(|(n, _)| *n)
            .unwrap_or_else(|| panic!("nothing mounted at {mount_path}: {mounts:?}"));
        seq(&pod["volumes"])
            .iter()
            .find(|v| text(&v["name"]) == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let config = volume("/etc/distribution");
    let map = of_kind(&docs, "ConfigMap");
    assert_eq!(
        text(&config["configMap"]["name"]),
        text(&map["metadata"]["name"])
    );
    assert!(map["data"].as_mapping_get("config.yml").is_some());
    let data = volume("/var/lib/registry");
    let claim = of_kind(&docs, "PersistentVolumeClaim");
    assert_eq!(
        text(&data["persistentVolumeClaim"]["claimName"]),
        text(&claim["metadata"]["name"])
    );
    let service = of_kind(&docs, "Service");
    assert_eq!(
        text(&seq(&service["spec"]["ports"])[0]["targetPort"]),
        port_name
    );
}

fn of_kind<'a, 'b>(docs: &'b [Yaml<'a>], kind: &str) -> &'b Yaml<'a> {
    docs.iter()
        .find(|d| text(&d["kind"]) == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn text<'b>(node: &'b Yaml<'_>) -> &'b str {
    node.as_str()
        .unwrap_or_else(|| panic!("not a string: {node:?}"))
}

fn seq<'a, 'b>(node: &'b Yaml<'a>) -> &'b [Yaml<'a>] {
    node.as_sequence()
        .unwrap_or_else(|| panic!("not a sequence: {node:?}"))
}
