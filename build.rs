//! Links libgcc's unwinder into tend instead of loading `libgcc_s.so` at every start.
//!
//! Rust's standard library asks the linker for `-lgcc_s` on glibc targets. Loading that
//! library costs every `tend status` a fifth object to map and relocate, and its constructor
//! probes the CPU with `cpuid`, which traps to the hypervisor on a VM: about 0.1 ms of a
//! 1.6 ms command (docs/performance.md, "Status"). libgcc ships the same unwinder as the
//! static archive `libgcc_eh.a`, which is what `gcc -static-libgcc` links. A directory that
//! holds it under the name `libgcc_s.a`, searched before the system's, makes `-lgcc_s`
//! resolve to it. Where the archive cannot be found (another C compiler, another libc), the
//! link is left as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let target = std::env::var("TARGET").unwrap_or_default();
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .any(|feature| feature == "crt-static");
    // A static build links libgcc_eh already; other targets have no libgcc_s to replace; a
    // cross build would need the cross compiler's archive, which `cc` does not know.
    let native = std::env::var("HOST").is_ok_and(|host| host == target);
    if !target.ends_with("-linux-gnu") || static_crt || !native {
        return;
    }
    let Some(archive) = libgcc_eh() else {
        println!("cargo:warning=libgcc_eh.a not found: tend will load libgcc_s.so at start");
        return;
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-unwinder");
    let link = dir.join("libgcc_s.a");
    let made = std::fs::create_dir_all(&dir).and_then(|()| {
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

/// Where the C compiler that links tend keeps libgcc's static unwinder, if it has one.
fn libgcc_eh() -> Option<PathBuf> {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let output = Command::new(compiler)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let printed = String::from_utf8(output.stdout).ok()?;
    // Asked for a file it does not have, the compiler prints the bare name back.
    let path = Path::new(printed.trim());
    (output.status.success() && path.is_absolute() && path.is_file()).then(|| path.to_path_buf())
}
