//! Link options for the binaries.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        // Relative relocations packed (DT_RELR, glibc 2.36+): a PIE's table
        // of them is otherwise read whole at every start and stays resident,
        // about half a MiB for the server.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
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
