//! Rebuilds the crate when the embedded sample site under `site/` changes,
//! since `include_dir!` alone does not tell cargo about the files it reads.

fn main() {
    println!("cargo:rerun-if-changed=site");
    println!("cargo:rerun-if-changed=build.rs");
}
