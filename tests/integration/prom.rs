use crate::support::*;
use std::time::Instant;

fn stack(pg: bool, redis: bool) -> Sandbox {
    sandbox_with(Services {
        postgres: pg,
        redis,
        monitoring: true,
    })
}

#[test]
fn stack_starts() {
    let t = Instant::now();
    let sb = stack(true, true);
    eprintln!("started in {:?}: {}", t.elapsed(), sb.describe());
}
