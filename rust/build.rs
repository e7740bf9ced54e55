//! Links the system Hyperscan-compatible library (Debian libvectorscan-dev / libhyperscan-dev).
//! Linked dynamically: Debian's static archive is not built as PIC.
fn main() {
    println!("cargo:rerun-if-env-changed=HS_LIB_DIR");
    if let Ok(dir) = std::env::var("HS_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=dylib=hs");
}
