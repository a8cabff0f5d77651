//! `bottle build`: the Debian base image (debootstrap, once), static binaries (cargo), then
//! one image per sidecar (and the e2e test images), each tagged with a hash of its inputs so
//! an unchanged image is not rebuilt. Images marked `on_demand` (large test images only one
//! test needs) are built only when named: `bottle build --image bottle-agent-clients`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::docker;
use crate::error::{Error, Result};
use crate::ui;

/// The base image tag.
pub const BASE_IMAGE: &str = "bottle-base:bookworm";
/// The target the static binaries are built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// One image to build.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Image repository (`bottle-pipelock`).
    pub repo: &'static str,
    /// Directory under images/.
    pub dir: &'static str,
    /// Binaries copied into the context (from the static release dir).
    pub binaries: &'static [&'static str],
    /// Built FROM the Debian base.
    pub uses_base: bool,
    /// Only for the tests.
    pub test_only: bool,
    /// Built only when named with `--image` (never by a plain `bottle build`): a large test
    /// image that a single test builds for itself, so every other build stays quick.
    pub on_demand: bool,
}

/// Every image `bottle build` knows.
pub const IMAGES: &[ImageSpec] = &[
    ImageSpec {
        repo: "bottle-pipelock",
        dir: "pipelock",
        binaries: &["pipelock"],
        uses_base: false,
        test_only: false,
        on_demand: false,
    },
    ImageSpec {
        repo: "bottle-egress",
        dir: "egress",
        binaries: &["egress"],
        uses_base: false,
        test_only: false,
        on_demand: false,
    },
    ImageSpec {
        repo: "bottle-git-gate",
        dir: "git-gate",
        binaries: &["git-gate"],
        uses_base: true,
        test_only: false,
        on_demand: false,
    },
    ImageSpec {
        repo: "bottle-supervise",
        dir: "supervise",
        binaries: &["supervise"],
        uses_base: false,
        test_only: false,
        on_demand: false,
    },
    ImageSpec {
        repo: "bottle-echo-origin",
        dir: "echo-origin",
        binaries: &["echo-origin"],
        uses_base: false,
        test_only: true,
        on_demand: false,
    },
    ImageSpec {
        repo: "bottle-agent-test",
        dir: "agent-test",
        binaries: &[],
        uses_base: true,
        test_only: true,
        on_demand: false,
    },
    // Real clients (pip, npm, cargo, go, ...) for tests/e2e/tests/clients.rs: about a
    // gigabyte, so only that test builds it (`--image bottle-agent-clients`).
    ImageSpec {
        repo: "bottle-agent-clients",
        dir: "agent-clients",
        binaries: &[],
        uses_base: true,
        test_only: true,
        on_demand: true,
    },
];

/// Options of `bottle build`.
pub struct BuildOpts {
    /// Also build the e2e test images (echo origin, test agent).
    pub test_images: bool,
    /// Rebuild even when the input hash is unchanged.
    pub force: bool,
    /// Build exactly these images (repositories, e.g. `bottle-agent-clients`) instead of the
    /// default set; the only way to build an `on_demand` image. Empty: the default set.
    pub only: Vec<String>,
}

/// The images a build makes, in `IMAGES` order. Without `only`: every image that is not
/// `on_demand`, test images only with `test_images`. With `only`: exactly the named ones
/// (`:latest` may be written), whatever `test_images` says; an unknown name is an error
/// listing the known ones.
pub fn select<'a>(all: &'a [ImageSpec], o: &BuildOpts) -> Result<Vec<&'a ImageSpec>> {
    if o.only.is_empty() {
        return Ok(all
            .iter()
            .filter(|i| !i.on_demand && (o.test_images || !i.test_only))
            .collect());
    }
    let mut wanted = Vec::new();
    for name in &o.only {
        let repo = name.strip_suffix(":latest").unwrap_or(name);
        if !all.iter().any(|i| i.repo == repo) {
            let known: Vec<&str> = all.iter().map(|i| i.repo).collect();
            return Err(Error::Usage(format!(
                "unknown image `{name}` for --image; known: {}",
                known.join(", ")
            )));
        }
        wanted.push(repo);
    }
    Ok(all.iter().filter(|i| wanted.contains(&i.repo)).collect())
}

/// The cargo packages whose static binaries the selected images copy in. Every image's
/// binary is built by the package of the same name (pipelock, egress, ...).
fn packages_for(images: &[&ImageSpec]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for b in images.iter().flat_map(|i| i.binaries.iter().copied()) {
        if !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// Result per image.
#[derive(Debug, Clone)]
pub struct Built {
    /// `repo:latest`.
    pub image: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it was rebuilt now.
    pub rebuilt: bool,
}

fn target_dir(repo: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
}

fn run_visible(mut c: Command, what: &str) -> Result<()> {
    c.stdin(Stdio::null());
    let st = c
        .status()
        .map_err(|e| Error::Docker(format!("cannot run {what}: {e}")))?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::Docker(format!("{what} failed ({st})")))
    }
}

/// Is this binary a real sidecar (not a placeholder)? Its `--help` names `--listen`.
fn is_real(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).contains("--listen")
                || String::from_utf8_lossy(&o.stdout).contains("--http")
        })
        .unwrap_or(false)
}

/// Run the whole build.
pub fn build(o: &BuildOpts) -> Result<Vec<Built>> {
    let repo = docker::repo_root().ok_or_else(|| {
        Error::Usage("cannot find the bottle repository (set BOTTLE_REPO=/path/to/repo)".into())
    })?;
    docker::check_daemon()?;
    let images = select(IMAGES, o)?;

    // 1. base image
    let need_base = images.iter().any(|i| i.uses_base);
    if need_base {
        if docker::image_exists(BASE_IMAGE) {
            ui::ok(&format!("base image {BASE_IMAGE} present"));
        } else {
            ui::step(&format!(
                "building base image {BASE_IMAGE} with debootstrap (a few minutes, once)"
            ));
            let mut c = Command::new("sh");
            c.arg(repo.join("images/base/build-base.sh"));
            run_visible(c, "images/base/build-base.sh")?;
        }
    }

    // 2. static binaries (none when only binary-less images are asked for)
    let packages = packages_for(&images);
    if !packages.is_empty() {
        ui::step(&format!(
            "cargo build --release --target {TARGET} (static): {}",
            packages.join(", ")
        ));
        cargo_static(&repo, &packages)?;
    }
    let bin_dir = target_dir(&repo).join(TARGET).join("release");

    // 3. images
    let mut out = Vec::new();
    for spec in images {
        let mut real = true;
        for b in spec.binaries {
            if !is_real(&bin_dir.join(b)) {
                real = false;
            }
        }
        if !real {
            return Err(Error::Docker(format!(
                "{} is not a working binary yet (its --help has no --listen)",
                spec.binaries.join(", ")
            )));
        }
        out.push(build_image(&repo, &bin_dir, spec, o.force)?);
    }
    ui::step("images:");
    for b in &out {
        println!(
            "  {:<28} {:>8.1} MB  {}",
            b.image,
            b.size as f64 / 1_000_000.0,
            if b.rebuilt { "built" } else { "unchanged" }
        );
    }
    Ok(out)
}

fn cargo_static(repo: &Path, packages: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(repo)
        .args(["build", "--release", "--target", TARGET]);
    for p in packages {
        c.args(["-p", p]);
    }
    let flags = static_rustflags(&std::env::var("RUSTFLAGS").unwrap_or_default());
    c.env("RUSTFLAGS", flags);
    run_visible(c, "cargo build")
}

/// `RUSTFLAGS` for the images' binaries: the caller's flags plus, unless already there,
/// glibc linked in (`+crt-static`: the images hold nothing but the binary) and relative
/// relocations packed (RELR: the static-PIE keeps its address randomisation, while its
/// relocation table shrinks from ~0.5 MB to a few KB, which keeps pipelock's image under 10
/// MB). Anything else that builds these binaries must use the same flags, or cargo rebuilds
/// every crate.
pub fn static_rustflags(caller: &str) -> String {
    let mut flags = caller.trim().to_string();
    for (present, flag) in [
        ("crt-static", "-C target-feature=+crt-static"),
        (
            "pack-relative-relocs",
            "-C link-arg=-Wl,-z,pack-relative-relocs",
        ),
    ] {
        if !flags.contains(present) {
            flags = format!("{flags} {flag}").trim().to_string();
        }
    }
    flags
}

fn build_image(repo: &Path, bin_dir: &Path, spec: &ImageSpec, force: bool) -> Result<Built> {
    let dockerfile = repo.join("images").join(spec.dir).join("Dockerfile");
    let df = std::fs::read(&dockerfile)
        .map_err(|e| Error::io(format!("reading {}", dockerfile.display()), e))?;
    let mut h = Sha256::new();
    h.update(b"bottle-image-v1\0");
    h.update(&df);
    for b in spec.binaries {
        let p = bin_dir.join(b);
        let data =
            std::fs::read(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
        h.update(b.as_bytes());
        h.update(&data);
    }
    if spec.uses_base {
        let id = docker::docker(&["image", "inspect", "--format", "{{.Id}}", BASE_IMAGE])?;
        h.update(id.trim().as_bytes());
    }
    let hash = hex::encode(h.finalize());
    let short = &hash[..16];
    let hashed = format!("{}:{short}", spec.repo);
    let latest = format!("{}:latest", spec.repo);
    let rebuilt = if !force && docker::image_exists(&hashed) {
        docker::docker(&["tag", &hashed, &latest])?;
        ui::ok(&format!("{latest} unchanged ({short})"));
        false
    } else {
        ui::step(&format!("docker build {latest} ({short})"));
        let ctx = tempdir_for(spec.repo)?;
        let res = (|| {
            std::fs::write(ctx.join("Dockerfile"), &df)
                .map_err(|e| Error::io("writing build context", e))?;
            for b in spec.binaries {
                std::fs::copy(bin_dir.join(b), ctx.join(b))
                    .map_err(|e| Error::io(format!("copying {b}"), e))?;
            }
            let mut c = Command::new("docker");
            c.env("DOCKER_BUILDKIT", "0")
                .args(["build", "--pull=false", "--label"])
                .arg(format!("org.bottle.input-hash={hash}"))
                .args([
                    "--label",
                    &format!(
                        "org.opencontainers.image.version={}",
                        env!("CARGO_PKG_VERSION")
                    ),
                ])
                .args(["-t", &hashed, "-t", &latest])
                .arg(&ctx);
            run_visible(c, &format!("docker build {latest}"))
        })();
        let _ = std::fs::remove_dir_all(&ctx);
        res?;
        true
    };
    let size = docker::docker(&["image", "inspect", "--format", "{{.Size}}", &latest])?
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(Built {
        image: latest,
        size,
        rebuilt,
    })
}

fn tempdir_for(name: &str) -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("bottle-build-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_rustflags_adds_each_flag_once_and_keeps_the_callers() {
        let both = "-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs";
        assert_eq!(static_rustflags(""), both);
        assert_eq!(static_rustflags("  "), both);
        assert_eq!(static_rustflags(both), both, "idempotent");
        assert_eq!(
            static_rustflags("-C target-cpu=native"),
            format!("-C target-cpu=native {both}")
        );
        // A caller that already chose either one keeps its choice.
        let own = "-C target-feature=+crt-static,+aes";
        assert_eq!(
            static_rustflags(own),
            format!("{own} -C link-arg=-Wl,-z,pack-relative-relocs")
        );
    }

    fn opts(test_images: bool, only: &[&str]) -> BuildOpts {
        BuildOpts {
            test_images,
            force: false,
            only: only.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn repos(o: &BuildOpts) -> Vec<&'static str> {
        match select(IMAGES, o) {
            Ok(v) => v.iter().map(|i| i.repo).collect(),
            Err(e) => panic!("select failed: {e}"),
        }
    }

    #[test]
    fn a_plain_build_never_builds_an_on_demand_image() {
        for test_images in [true, false] {
            let got = repos(&opts(test_images, &[]));
            assert!(!got.contains(&"bottle-agent-clients"), "{got:?}");
            assert!(got.contains(&"bottle-pipelock"), "{got:?}");
            assert_eq!(got.contains(&"bottle-agent-test"), test_images, "{got:?}");
        }
    }

    #[test]
    fn the_default_set_is_every_image_not_on_demand() {
        let got = repos(&opts(true, &[]));
        let want: Vec<&str> = IMAGES
            .iter()
            .filter(|i| !i.on_demand)
            .map(|i| i.repo)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn naming_an_image_builds_exactly_it_even_without_test_images() {
        for test_images in [true, false] {
            assert_eq!(
                repos(&opts(test_images, &["bottle-agent-clients"])),
                ["bottle-agent-clients"]
            );
        }
        assert_eq!(
            repos(&opts(
                true,
                &["bottle-agent-clients:latest", "bottle-egress"]
            )),
            ["bottle-egress", "bottle-agent-clients"],
            "IMAGES order, :latest accepted"
        );
    }

    #[test]
    fn an_unknown_image_is_a_usage_error_listing_the_known_ones() {
        match select(IMAGES, &opts(true, &["bottle-agent-client"])) {
            Err(Error::Usage(m)) => {
                assert!(m.contains("bottle-agent-client`"), "{m}");
                assert!(m.contains("bottle-agent-clients"), "{m}");
            }
            other => panic!("expected a usage error, got {:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn only_the_selected_images_binaries_are_compiled() {
        let sel = |only: &[&str]| select(IMAGES, &opts(true, only)).unwrap_or_default();
        assert!(packages_for(&sel(&["bottle-agent-clients"])).is_empty());
        assert_eq!(packages_for(&sel(&["bottle-egress"])), ["egress"]);
        assert_eq!(
            packages_for(&sel(&[])),
            ["pipelock", "egress", "git-gate", "supervise", "echo-origin"]
        );
    }
}
