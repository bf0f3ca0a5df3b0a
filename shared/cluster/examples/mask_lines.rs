//! Development aid: prints the template of every stdin line.
use std::io::{self, BufRead};
fn main() {
    for l in io::stdin().lock().lines().map_while(Result::ok) {
        println!("{}", achilles_cluster::mask(&l));
    }
}
