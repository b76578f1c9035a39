//! Link options for the binaries.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        // No packed relative relocations (DT_RELR), although they would
        // keep the server's table of relocations (about 450 KiB, read at
        // every start) out of memory: they need glibc 2.36, and the package
        // runs on 2.35 (Ubuntu 22.04). Said explicitly, because linkers
        // that pack them by default are coming (tests/glibc.rs checks).
        println!("cargo:rustc-link-arg-bins=-Wl,-z,nopack-relative-relocs");
        // The server's start, ban and status code laid out together, so that
        // it maps a fraction of its code (link/hot-text.ld says why).
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let script = std::path::Path::new(&dir).join("link/hot-text.ld");
        if script.is_file() {
            println!(
                "cargo:rustc-link-arg-bin=fail3ban-server=-Wl,-T,{}",
                script.display()
            );
        }
        println!("cargo:rerun-if-changed=link/hot-text.ld");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
