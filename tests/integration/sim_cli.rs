//! `firedrill sim up` / `down` as a person uses them, with real kubectl.

use std::process::Command;

use crate::support::{Firedrill, text, write};

fn kubectl(kubeconfig: &str, args: &[&str]) -> std::process::Output {
    let bin = firedrill::etcd::tools::on_path("kubectl").expect("kubectl is not installed: run scripts/setup first");
    Command::new(bin).arg("--kubeconfig").arg(kubeconfig).args(args).output().unwrap()
}

#[test]
fn sim_up_serves_kubectl_then_sim_down_stops_it() {
    let fd = Firedrill::new();
    let up = fd.run(&["sim", "up", "--config", "tests/fixtures/sim/small-cluster.yaml"]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    let stdout = String::from_utf8_lossy(&up.stdout).to_string();
    let kubeconfig = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kubeconfig: "))
        .unwrap_or_else(|| panic!("no kubeconfig printed: {stdout}"))
        .to_string();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let ready = loop {
        let out = kubectl(&kubeconfig, &["get", "nodes,pods", "-A"]);
        let listing = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && listing.matches("Running").count() >= 8 {
            break listing;
        }
        assert!(std::time::Instant::now() < deadline, "the cluster did not come up: {}", text(&out));
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(ready.contains("node/node-1") && ready.contains("pod/db-1"), "{ready}");
    assert!(fd.run(&["sim", "up"]).status.code() == Some(2), "a second cluster is refused while one runs");

    let down = fd.run(&["sim", "down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(!kubectl(&kubeconfig, &["get", "nodes"]).status.success(), "the cluster is gone");
}

#[test]
fn an_invalid_sim_file_is_named_with_its_place_and_nothing_starts() {
    let fd = Firedrill::new();
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: firedrill.dev/v1alpha1\nkind: SimCluster\nsim:\n  nodes:\n    - name: n\n      gpus: 2\n",
    );
    let out = fd.run(&["sim", "up", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:6:7: unknown field `gpus`"), "{stderr}");
    assert!(!fd.data_dir.path().join("sim/pid").exists());
    let validate = fd.run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(validate.status.code(), Some(2), "validate checks simulator files too: {}", text(&validate));
}
