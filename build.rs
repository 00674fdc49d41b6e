//! Rebuilds when a migration is added: the embedded migrations are read at compile time,
//! and a new folder changes no file the compiler already tracks.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
