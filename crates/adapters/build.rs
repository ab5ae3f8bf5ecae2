//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the files at compile
//! time, and cargo would not otherwise notice a new one.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
