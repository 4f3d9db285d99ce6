//! `data-vault blob put` and `blob get` move files of any size in flat memory (DESIGN §18):
//! put encrypts into a temporary file and streams it up, get decrypts as the download
//! arrives, and a failed get leaves nothing under the name asked for.

use crate::cli::{data_vault, ok, write_age_identity};
use crate::helpers::*;
use crate::on_both_backends;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MIB: usize = 1024 * 1024;
/// The CLI's peak resident set while it moves a 40 MiB file: less than the file, so a copy
/// of it in memory shows.
const RSS_LIMIT: u64 = 64 * MIB as u64;
const TIME: &str = "/usr/bin/time";

/// A user of the CLI with an age identity (its file) and recipient.
struct User {
    secret: String,
    identity_file: PathBuf,
    recipient: String,
}

impl User {
    async fn create(app: &TestApp) -> Self {
        let credentials = app.create_client("cli-user").await;
        let identity_file = app.dir.path().join("identity.txt");
        let recipient = write_age_identity(&identity_file);
        Self {
            secret: credentials.secret.as_str().to_owned(),
            identity_file,
            recipient,
        }
    }

    fn command(&self, app: &TestApp) -> Command {
        let mut command = data_vault(app);
        command
            .env("DATA_VAULT_PRINCIPAL", "cli-user")
            .env("DATA_VAULT_SECRET", &self.secret);
        command
    }

    fn put(&self, app: &TestApp, file: &str) -> Command {
        let mut command = self.command(app);
        command.args([
            "blob",
            "put",
            file,
            "--scope",
            "support",
            "--recipient",
            &self.recipient,
        ]);
        command
    }

    fn get(&self, app: &TestApp, id: &str, output: &str) -> Command {
        let mut command = self.command(app);
        command.args(["blob", "get", id, "--identity"]);
        command.arg(&self.identity_file).args(["-o", output]);
        command
    }
}

/// `len` bytes that differ all along (xorshift), so a moved or repeated piece shows.
fn plaintext_of(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// GNU time reports a process's exact peak resident set (its rusage), which sampling /proc
/// could miss.
fn time_available() -> bool {
    tool_runs("CLI memory test", TIME, &["-f", "%M", "true"])
}

/// Runs `command` under GNU time: its output and its peak resident set in bytes.
fn run_measured(command: &Command, report: &Path) -> (Output, u64) {
    let mut timed = Command::new(TIME);
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report)
        .arg(command.get_program())
        .args(command.get_args())
        .env_clear();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    let output = timed.output().unwrap();
    let kib: u64 = std::fs::read_to_string(report)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (output, kib * 1024)
}

fn id_of(put: &str) -> String {
    let meta: serde_json::Value = serde_json::from_str(put).unwrap();
    meta["id"].as_str().unwrap().to_owned()
}

async fn a_40_mib_file_round_trips_through_the_cli_in_flat_memory(backend: Backend) {
    if !time_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let user = User::create(&app).await;
    let dir = app.dir.path();
    let plaintext = plaintext_of(40 * MIB + 13);
    let document = dir.join("recording.webm");
    std::fs::write(&document, &plaintext).unwrap();

    let (put, put_peak) = run_measured(
        &user.put(&app, document.to_str().unwrap()),
        &dir.join("put.rss"),
    );
    let put = ok(put);
    let meta: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert_eq!(meta["owner"], "cli-user");
    assert!(
        meta["size"].as_u64().unwrap() > plaintext.len() as u64,
        "{meta}"
    );
    let id = id_of(&put);

    let out = dir.join("out.webm");
    let (get, get_peak) = run_measured(
        &user.get(&app, &id, out.to_str().unwrap()),
        &dir.join("get.rss"),
    );
    let stderr = String::from_utf8_lossy(&get.stderr).into_owned();
    ok(get);
    assert!(
        stderr.contains(&format!("wrote {} bytes", plaintext.len())),
        "{stderr}"
    );
    assert!(std::fs::read(&out).unwrap() == plaintext);
    eprintln!(
        "40 MiB through the CLI: put peak RSS {:.1} MiB, get peak RSS {:.1} MiB",
        put_peak as f64 / MIB as f64,
        get_peak as f64 / MIB as f64
    );
    assert!(put_peak < RSS_LIMIT, "put peaked at {put_peak} bytes");
    assert!(get_peak < RSS_LIMIT, "get peaked at {get_peak} bytes");
}

async fn put_reads_standard_input_and_get_writes_standard_output(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::create(&app).await;
    // Above the inline limit: the envelope goes to the object store and streams back.
    let plaintext = plaintext_of(3 * MIB + 7);
    let mut put = user
        .put(&app, "-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = put.stdin.take().unwrap();
    let written = plaintext.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&written).unwrap());
    let put = put.wait_with_output().unwrap();
    writer.join().unwrap();
    let id = id_of(&ok(put));

    let got = user.get(&app, &id, "-").output().unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(got.stdout == plaintext, "{} bytes", got.stdout.len());

    // A small file is stored inline and comes back the same way.
    let small = app.dir.path().join("note.txt");
    std::fs::write(&small, b"a short note").unwrap();
    let id = id_of(&ok(user
        .put(&app, small.to_str().unwrap())
        .output()
        .unwrap()));
    let got = ok(user.get(&app, &id, "-").output().unwrap());
    assert_eq!(got, "a short note");
}

/// The one object the vault holds, with one byte flipped at `offset`.
fn corrupt_the_object(app: &TestApp, offset: u64) {
    let objects = crate::large::objects_in(&app.objects_dir());
    assert_eq!(objects.len(), 1, "{objects:?}");
    let mut bytes = std::fs::read(&objects[0]).unwrap();
    let at = usize::try_from(offset).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(&objects[0], bytes).unwrap();
}

/// What `dir` holds, by name.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn a_get_that_fails_leaves_no_output_file(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = User::create(&app).await;
    let plaintext = plaintext_of(3 * MIB);
    let document = app.dir.path().join("bundle.tar");
    std::fs::write(&document, &plaintext).unwrap();
    let id = id_of(&ok(user
        .put(&app, document.to_str().unwrap())
        .output()
        .unwrap()));
    let out_dir = app.dir.path().join("downloads");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("bundle.tar");

    // Not a recipient: refused at the envelope's header.
    let stranger_file = app.dir.path().join("stranger.txt");
    write_age_identity(&stranger_file);
    let refused = user
        .command(&app)
        .args(["blob", "get", &id, "--identity"])
        .arg(&stranger_file)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("none of the identities"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(names_in(&out_dir).is_empty(), "{:?}", names_in(&out_dir));

    // The download breaks off two thirds of the way, after megabytes of plaintext were
    // written: the vault cannot open a chunk of its object and cuts the response short.
    corrupt_the_object(&app, 2 * MIB as u64);
    let broken = user.get(&app, &id, out.to_str().unwrap()).output().unwrap();
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("download broke off"), "{stderr}");
    assert!(names_in(&out_dir).is_empty(), "{:?}", names_in(&out_dir));

    // A file already under that name is left as it was.
    std::fs::write(&out, b"yesterday's copy").unwrap();
    let broken = user.get(&app, &id, out.to_str().unwrap()).output().unwrap();
    assert!(!broken.status.success());
    assert_eq!(names_in(&out_dir), ["bundle.tar"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"yesterday's copy");
}

on_both_backends!(
    a_40_mib_file_round_trips_through_the_cli_in_flat_memory,
    put_reads_standard_input_and_get_writes_standard_output,
    a_get_that_fails_leaves_no_output_file,
);
