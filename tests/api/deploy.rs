//! The deploy kit (DESIGN §20), checked with the tools that can check it here: the
//! Kubernetes manifests with `kubernetes-validate` (PyPI), the systemd unit with
//! `systemd-analyze verify`, the compose file parsed and its services and mounts checked,
//! the container file's shape. Each tool's absence is a loud skip, and a failure under CI.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Whether `program` runs; under CI it must.
fn tool(program: &str, args: &[&str]) -> bool {
    crate::helpers::tool_runs("deploy check", program, args)
}

/// Every YAML document of `file`, through PyYAML (which kubernetes-validate brings).
fn yaml_documents(file: &Path) -> Option<Vec<Value>> {
    if !tool("python3", &["-c", "import yaml"]) {
        return None;
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} does not parse: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

const MANIFESTS: [&str; 4] = [
    "k8s/deployment.yaml",
    "k8s/service.yaml",
    "k8s/pdb.yaml",
    "k8s/networkpolicy.yaml",
];

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn kubernetes_manifests_are_valid_and_strict() {
    if !tool("kubernetes-validate", &["--version"]) {
        return;
    }
    let files: Vec<PathBuf> = MANIFESTS.iter().map(|f| deploy(f)).collect();
    let output = kubernetes_validate(&files);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The validator does reject a field Kubernetes does not know.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("deployment.yaml");
    let text = std::fs::read_to_string(deploy("k8s/deployment.yaml")).unwrap();
    std::fs::write(
        &broken,
        text.replace("replicas: 3", "replicas: 3\n  replica: 3"),
    )
    .unwrap();
    assert!(!kubernetes_validate(&[broken]).status.success());
    // Every manifest is listed in the kustomization.
    let kustomization = std::fs::read_to_string(deploy("k8s/kustomization.yaml")).unwrap();
    for file in MANIFESTS {
        let name = file.trim_start_matches("k8s/");
        assert!(
            kustomization.contains(name),
            "{name} is not in kustomization.yaml"
        );
    }
}

#[test]
fn the_deployment_runs_three_probed_replicas_with_keys_from_secrets() {
    let Some(docs) = yaml_documents(&deploy("k8s/deployment.yaml")) else {
        return;
    };
    let spec = &docs[0]["spec"];
    assert_eq!(spec["replicas"], 3);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "data-vault-keys");
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for key in [
        "DATA_VAULT_STORAGE__DATABASE_URL",
        "DATA_VAULT_KEYS__MASTER_KEY_FILE",
        "DATA_VAULT_AUDIT__LOG_KEY_FILE",
    ] {
        assert!(env.contains(&key), "{key} is not set");
    }
    let pdb = yaml_documents(&deploy("k8s/pdb.yaml")).unwrap();
    assert_eq!(pdb[0]["kind"], "PodDisruptionBudget");
    let policy = yaml_documents(&deploy("k8s/networkpolicy.yaml")).unwrap();
    assert_eq!(policy[0]["kind"], "NetworkPolicy");
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if !tool("systemd-analyze", &["--version"]) {
        return;
    }
    let text = std::fs::read_to_string(deploy("systemd/data-vault.service")).unwrap();
    for directive in [
        "User=data-vault",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "KillSignal=SIGTERM",
    ] {
        assert!(
            text.lines().any(|l| l == directive),
            "the unit lacks {directive}"
        );
    }
    // `verify` checks that ExecStart is executable: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("data-vault.service");
    let text = text.replace(
        "/usr/local/bin/data-vault",
        env!("CARGO_BIN_EXE_data-vault"),
    );
    std::fs::write(&unit, text).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Unknown keys and bad values are only warnings to systemd: none may appear.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("data-vault.service"))
        .collect();
    assert!(
        output.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_systemd_example_config_loads() {
    let config = data_vault::config::Config::load(Some(&deploy("systemd/config.toml"))).unwrap();
    assert!(config.storage.database_url.starts_with("postgres://"));
    assert_eq!(config.log.format, data_vault::config::LogFormat::Json);
}

#[test]
fn compose_has_the_services_and_the_files_it_mounts() {
    let Some(docs) = yaml_documents(&deploy("compose.yaml")) else {
        return;
    };
    let services = docs[0]["services"].as_object().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "grafana",
            "postgres",
            "prometheus",
            "redis",
            "vault-1",
            "vault-2"
        ]
    );
    for replica in ["vault-1", "vault-2"] {
        let env = &services[replica]["environment"];
        assert!(env["DATA_VAULT_STORAGE__DATABASE_URL"]
            .as_str()
            .unwrap()
            .starts_with("postgres://"));
        assert_eq!(env["DATA_VAULT_REDIS__URL"], "redis://redis:6379");
        assert_eq!(
            services[replica]["build"]["dockerfile"],
            "deploy/container/Containerfile"
        );
    }
    // Every file mounted from the repository exists.
    for service in services.values() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if let Some(path) = source.strip_prefix("./") {
                assert!(deploy(path).exists(), "compose mounts missing {source}");
            }
        }
    }
    let prometheus = std::fs::read_to_string(deploy("compose/prometheus.yml")).unwrap();
    assert!(prometheus.contains("vault-1:9090") && prometheus.contains("vault-2:9090"));
    assert!(deploy("grafana/provisioning/dashboards/data-vault.yaml").exists());
}

/// The compose file's Prometheus configuration loads, with the vault's alert rules.
#[test]
fn the_compose_prometheus_configuration_loads_with_the_alert_rules() {
    if !tool("promtool", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(deploy("compose/prometheus.yml")).unwrap();
    // Inside the container the rules are mounted at /etc/prometheus/alerts.yml.
    let rules = deploy("prometheus/alerts.yml");
    assert!(text.contains("/etc/prometheus/alerts.yml"));
    let text = text.replace("/etc/prometheus/alerts.yml", &rules.display().to_string());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, text).unwrap();
    crate::cli::ok(
        Command::new("promtool")
            .args(["check", "config"])
            .arg(&config)
            .output()
            .unwrap(),
    );
}

#[test]
fn the_container_image_is_multi_stage_and_runs_unprivileged() {
    let text = std::fs::read_to_string(deploy("container/Containerfile")).unwrap();
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "the Containerfile must be multi-stage");
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "USER {user}"
    );
    assert!(text.contains("cargo build --release --locked"));
}
