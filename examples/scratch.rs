fn main() {
    for p in std::env::args().skip(1) {
        let d = ferry::disk::SourceDisk::open(std::path::Path::new(&p)).unwrap();
        let info = ferry::layout::fs::detect(&d);
        println!("{p}: {info:?}");
        match ferry::layout::fs::ext::block_counts(&d) {
            Ok((b, u, f)) => println!("  blocks {b} used {u} free(sb) {f} used+free={} {}", u + f, if u + f == b { "OK" } else { "MISMATCH" }),
            Err(e) => println!("  err {e}"),
        }
    }
}
