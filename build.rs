//! Link options for the binaries.

fn main() {
    // Relative relocations packed (DT_RELR, glibc 2.36+): a PIE's table of
    // them is otherwise read whole at every start and stays resident, about
    // half a MiB for the server.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
