//! Links libgcc's unwinder into tend instead of loading `libgcc_s.so` at every start.
//!
//! Rust's standard library asks the linker for `-lgcc_s` on glibc targets. Loading that
//! library costs every `tend status` a fifth object to map and relocate, and its constructor
//! probes the CPU with `cpuid`, which traps to the hypervisor on a VM: about 0.1 ms of a
//! 1.6 ms command (docs/performance.md, "Status"). libgcc ships the same unwinder as the
//! static archive `libgcc_eh.a`, which is what `gcc -static-libgcc` links. A directory that
//! holds it under the name `libgcc_s.a`, searched before the system's, makes `-lgcc_s`
//! resolve to it (also for what links tend as a library, such as the fuzz targets).
//!
//! The archive of GCC 12 or later built on glibc 2.35 or later calls `_dl_find_object`, so
//! the binary then needs that glibc (2.35) where `libgcc_s.so` would have answered the call
//! on an older one. `TEND_SHARED_LIBGCC=1` keeps `libgcc_s.so`, for a binary meant for an
//! older glibc than the one it is built on. Where the archive cannot be found (another C
//! compiler, another libc), the link is left as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for variable in ["TEND_SHARED_LIBGCC", "RUSTC_LINKER", "CC", "TARGET_CC"] {
        println!("cargo:rerun-if-env-changed={variable}");
    }
    let target = std::env::var("TARGET").unwrap_or_default();
    let variable = |name: &str| std::env::var(name).unwrap_or_default();
    let glibc =
        variable("CARGO_CFG_TARGET_OS") == "linux" && variable("CARGO_CFG_TARGET_ENV") == "gnu";
    let static_crt = variable("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    // A static build links libgcc_eh already; other targets have no libgcc_s to replace; a
    // cross build would need the cross compiler's archive, which the host's does not know.
    let native = variable("HOST") == target;
    let declined = !variable("TEND_SHARED_LIBGCC").is_empty();
    if !glibc || static_crt || !native || declined {
        return;
    }
    let Some(archive) = libgcc_eh(&target) else {
        println!("cargo:warning=libgcc_eh.a not found: tend will load libgcc_s.so at start");
        return;
    };
    println!("cargo:rerun-if-changed={}", archive.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-unwinder");
    let link = dir.join("libgcc_s.a");
    let made = std::fs::create_dir_all(&dir).and_then(|()| {
        // A copy of a read-only archive is read-only: replace it rather than write into it.
        let _ = std::fs::remove_file(&link);
        std::fs::copy(&archive, &link).map(|_| ())
    });
    if let Err(error) = made {
        println!(
            "cargo:warning=could not stage {}: {error}",
            archive.display()
        );
        return;
    }
    println!("cargo:rustc-link-search=native={}", dir.display());
}

/// Where the C compiler that links tend keeps libgcc's static unwinder, if it has one: the
/// linker cargo was told to use, else the C compiler the environment names, else `cc`.
fn libgcc_eh(target: &str) -> Option<PathBuf> {
    let compiler = [
        "RUSTC_LINKER".to_string(),
        format!("CC_{target}"),
        format!("CC_{}", target.replace('-', "_")),
        "TARGET_CC".to_string(),
        "CC".to_string(),
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    .unwrap_or_else(|| "cc".to_string());
    // `ccache gcc`, `zig cc`: a program and its first arguments.
    let mut words = compiler.split_whitespace();
    let output = Command::new(words.next()?)
        .args(words)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let printed = String::from_utf8(output.stdout).ok()?;
    // Asked for a file it does not have, the compiler prints the bare name back.
    let path = Path::new(printed.trim());
    (output.status.success() && path.is_absolute() && path.is_file()).then(|| path.to_path_buf())
}
