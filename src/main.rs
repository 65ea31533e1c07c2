fn main() {
    println!("cdf-s3-replicator");
}
