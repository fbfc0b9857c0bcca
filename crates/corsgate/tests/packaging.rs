//! Packaging: the completions and manual pages generated from the CLI
//! definition, the systemd unit (parsed, and verified by systemd-analyze), the
//! container recipe (its stages and commands), and the Debian package (built by
//! the recipe's script and listed with dpkg-deb).

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, Parser};
use corsgate::cli::Cli;
use support::TempDir;
use support::binary::{Cmd, Ran};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corsgate(args: &[&str]) -> Ran {
    Cmd::new(args).run()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The commands a user sees (not `help`, not hidden ones such as `man`).
fn commands() -> Vec<String> {
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .collect();
    for expected in [
        "check",
        "serve",
        "explain",
        "audit",
        "import",
        "completions",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    names
}

#[test]
fn completions_for_bash_zsh_and_fish_mention_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = corsgate(&["completions", shell]);
        assert_eq!(out.code, Some(0), "{shell}: {}", out.stderr);
        let script = out.stdout;
        for command in commands() {
            assert!(script.contains(&command), "{shell}: no {command}");
        }
        // Options of a subcommand too, and the import formats.
        for word in ["config", "from", "ingress-nginx", "gateway-api"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    // The bash script is valid bash.
    let script = corsgate(&["completions", "bash"]).stdout;
    let dir = TempDir::new("bash");
    let file = dir.write("corsgate.bash", &script);
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));
    // An unknown shell is refused with the list.
    let out = corsgate(&["completions", "tcsh"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("bash"), "{}", out.stderr);
}

#[test]
fn man_pages_are_generated_for_every_command() {
    let out = corsgate(&["man"]);
    assert_eq!(out.code, Some(0));
    let page = out.stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH corsgate 1"),
        "{page}"
    );
    assert!(page.contains(".TH corsgate 1"));
    for command in commands() {
        assert!(
            page.contains(&format!("corsgate\\-{command}(1)")),
            "corsgate(1) does not list {command}"
        );
    }

    let dir = TempDir::new("man");
    let out = corsgate(&["man", "--out-dir", dir.join("man1").to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for command in commands() {
        let file = dir.join(&format!("man1/corsgate-{command}.1"));
        let page = std::fs::read_to_string(&file).unwrap_or_else(|_| panic!("no {file:?}"));
        assert!(
            page.contains(&format!(".TH corsgate-{command} 1")),
            "{page}"
        );
    }
    // man renders it (the roff is well formed enough for man-db and groff).
    let rendered = Command::new("man")
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .args(["-l", "-P", "cat"])
        .arg(dir.join("man1/corsgate-import.1"))
        .output()
        .unwrap();
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let rendered = text(&rendered.stdout);
    assert!(rendered.contains("ingress-nginx"), "{rendered}");
}

/// `[Section]` → its `Key=Value` lines in order (a key may repeat).
fn unit(path: &Path) -> HashMap<String, Vec<(String, String)>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut section = String::new();
    for (n, line) in std::fs::read_to_string(path).unwrap().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=Value: {line}", n + 1));
        assert!(!section.is_empty(), "line {}: outside a section", n + 1);
        out.entry(section.clone())
            .or_default()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

#[test]
fn the_systemd_unit_is_hardened_and_reloads_by_sighup() {
    let path = repo().join("packaging/systemd/corsgate.service");
    let sections = unit(&path);
    let service = &sections["Service"];
    let get = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("ConfigurationDirectory", "corsgate"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    let start = get("ExecStart");
    assert_eq!(start.len(), 1);
    let args: Vec<&str> = start[0].split_whitespace().collect();
    assert_eq!(args[0], "/usr/bin/corsgate");
    // The arguments are the binary's own: clap accepts them.
    Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("ExecStart: {e}"));
    assert!(start[0].contains("serve --config /etc/corsgate/corsgate.toml"));
    let pre = get("ExecStartPre");
    assert_eq!(pre, ["/usr/bin/corsgate check /etc/corsgate/corsgate.toml"]);
    Cli::try_parse_from(pre[0].split_whitespace()).unwrap();
    assert!(get("SystemCallFilter").contains(&"@system-service"));
    assert_eq!(
        sections["Install"],
        [("WantedBy".to_owned(), "multi-user.target".to_owned())]
    );

    // systemd's own verdict, with the binary and the man pages it names present.
    let dir = TempDir::new("unit");
    let binary = env!("CARGO_BIN_EXE_corsgate");
    let unit_text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("/usr/bin/corsgate", binary);
    let copy = dir.write("corsgate.service", &unit_text);
    let man = dir.join("man");
    let out = corsgate(&["man", "--out-dir", man.join("man1").to_str().unwrap()]);
    assert_eq!(out.code, Some(0));
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

#[test]
fn the_container_recipe_builds_from_source_in_two_stages() {
    let recipe = std::fs::read_to_string(repo().join("packaging/container/Containerfile")).unwrap();
    // Instructions with their continuation lines joined.
    let joined = recipe
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let instructions: Vec<(&str, &str)> = joined
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().split_once(' ').unwrap_or((l.trim(), "")))
        .collect();
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|(i, _)| *i == "FROM")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].ends_with(" AS build"), "{froms:?}");
    let run: Vec<&str> = instructions
        .iter()
        .filter(|(i, _)| *i == "RUN")
        .map(|(_, a)| *a)
        .collect();
    let build = run.join(" && ");
    assert!(
        build.contains("cargo build --release --locked -p corsgate"),
        "{build}"
    );
    // What the build stage installs from the source tree exists, and the
    // configuration it bundles passes check, as its last step demands.
    let config = "crates/corsgate-config/src/starting_point.toml";
    assert!(build.contains(config));
    let out = corsgate(&["check", repo().join(config).to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(
        instructions
            .iter()
            .any(|(i, a)| *i == "COPY" && a.starts_with("--from=build ")),
        "the runtime stage copies from the build stage"
    );
    let user = instructions.iter().rev().find(|(i, _)| *i == "USER");
    assert!(
        user.is_some_and(|(_, u)| *u != "root" && *u != "0"),
        "{user:?}"
    );
    // ENTRYPOINT + CMD are arguments the binary accepts.
    let json = |name: &str| -> Vec<String> {
        let (_, value) = instructions.iter().find(|(i, _)| *i == name).unwrap();
        serde_json::from_str(value).unwrap_or_else(|e| panic!("{name} {value}: {e}"))
    };
    let mut argv = json("ENTRYPOINT");
    assert_eq!(argv, ["/usr/bin/corsgate"]);
    argv.extend(json("CMD"));
    Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let cmd = argv.join(" ");
    assert!(cmd.contains("--listen 0.0.0.0:8080"), "{cmd}");
    assert!(
        cmd.contains("--config /etc/corsgate/corsgate.toml"),
        "{cmd}"
    );
    // The build context leaves out build output.
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/"), "{ignore}");
}

#[test]
fn the_debian_package_has_the_binary_unit_config_pages_and_completions() {
    let dir = TempDir::new("deb");
    let out = Command::new(repo().join("packaging/deb/build-deb.sh"))
        .arg(dir.path())
        .env("CORSGATE_BIN", env!("CARGO_BIN_EXE_corsgate"))
        // No compression: this checks the contents, not the size.
        .env("DEB_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let deb = PathBuf::from(text(&out.stdout).trim());
    assert!(deb.starts_with(dir.path()), "{deb:?}");
    let name = deb.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&format!("corsgate_{}_", env!("CARGO_PKG_VERSION"))),
        "{name}"
    );

    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = text(&list.stdout);
    let mut want = vec![
        "./usr/bin/corsgate".to_owned(),
        "./usr/lib/systemd/system/corsgate.service".to_owned(),
        "./etc/corsgate/corsgate.toml".to_owned(),
        "./usr/share/man/man1/corsgate.1.gz".to_owned(),
        "./usr/share/bash-completion/completions/corsgate".to_owned(),
        "./usr/share/zsh/vendor-completions/_corsgate".to_owned(),
        "./usr/share/fish/vendor_completions.d/corsgate.fish".to_owned(),
        "./usr/share/doc/corsgate/copyright".to_owned(),
    ];
    want.extend(
        commands()
            .iter()
            .map(|c| format!("./usr/share/man/man1/corsgate-{c}.1.gz")),
    );
    for path in &want {
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("no {path} in\n{list}"));
        assert!(line.contains("root/root"), "{line}");
    }
    assert!(
        list.lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" ./usr/bin/corsgate"))
    );

    let field = |name: &str| {
        let out = Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        text(&out.stdout).trim().to_owned()
    };
    assert_eq!(field("Package"), "corsgate");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    assert!(
        field("Depends").starts_with("libc6 (>= 2."),
        "{}",
        field("Depends")
    );
    let conffiles = Command::new("dpkg-deb")
        .args(["-I"])
        .arg(&deb)
        .arg("conffiles")
        .output()
        .unwrap();
    assert_eq!(
        text(&conffiles.stdout).trim(),
        "/etc/corsgate/corsgate.toml"
    );

    // Unpacked, the binary runs and the configuration it ships passes check.
    let root = dir.join("root");
    let unpack = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .output()
        .unwrap();
    assert!(unpack.status.success(), "{}", text(&unpack.stderr));
    let check = Command::new(root.join("usr/bin/corsgate"))
        .arg("check")
        .arg(root.join("etc/corsgate/corsgate.toml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stdout));
}
