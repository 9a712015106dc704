//! Redis Cluster, for health checks: `redis+cluster://[user:pass@]seed:port[,seed:port]`.
//! ping and info discover every node with CLUSTER NODES from the first seed
//! that answers and ask each node directly; other primitives need one node's
//! URL, because a key operation must go to the node that owns its slot.

use super::conn::redis_error;
use super::info::{parse_info, select_section};
use crate::config::Target;
use crate::dispatch::{Call, OpError};
use rhai::{Dynamic, Map};
use std::time::{Duration, Instant};

pub(super) fn is_cluster(url: &str) -> bool {
    url.starts_with("redis+cluster://")
}

/// (credentials part incl. '@', seed host:port list)
fn split(url: &str) -> (String, Vec<String>) {
    let rest = url.trim_start_matches("redis+cluster://");
    let authority = rest.split('/').next().unwrap_or("");
    let (creds, hosts) = match authority.rsplit_once('@') {
        Some((c, h)) => (format!("{c}@"), h),
        None => (String::new(), authority),
    };
    (
        creds,
        hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// `<id> <ip:port@cport[,hostname]> <flags> ...` lines to node addresses.
/// `seed` is the node that answered: a node that has not yet learnt its own
/// IP lists itself as `:port`, and is reached at the seed's host.
pub(super) fn parse_nodes(text: &str, seed: &str) -> Vec<String> {
    let seed_host = seed.rsplit_once(':').map(|(h, _)| h).unwrap_or(seed);
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _id = f.next()?;
            let mut addr = f.next()?.split('@').next()?.to_string();
            let flags = f.next()?;
            if addr.starts_with(':') && flags.contains("myself") {
                addr = format!("{seed_host}{addr}");
            }
            // A failing node is kept: a health check must report it, not
            // skip it. Only nodes with no address to dial are left out.
            let usable =
                !flags.contains("noaddr") && !flags.contains("handshake") && !addr.starts_with(':');
            usable.then_some(addr)
        })
        .collect()
}

async fn node_conn(
    creds: &str,
    addr: &str,
    t: &Target,
) -> Result<redis::aio::MultiplexedConnection, OpError> {
    let client = super::conn::client(&format!("redis://{creds}{addr}/0")).map_err(|e| {
        OpError::bad_input(format!("invalid cluster node address {addr}")).with_cause(e)
    })?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(super::direct::CONNECT_LIMIT))
        .set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| redis_error(e, t, &format!("connect to cluster node {addr}")))
}

/// Each node's address with its reply and round trip in ms, or its error.
type NodeReplies = Vec<(String, Result<(String, f64), OpError>)>;

/// Runs `cmd` on every node concurrently, in node order.
fn on_each_node(
    call: &mut Call,
    cmd: redis::Cmd,
    what: &'static str,
) -> Result<NodeReplies, OpError> {
    let t = call.target()?;
    let (creds, seeds) = split(&t.url);
    call.block_on(async move {
        let mut last = None;
        let mut nodes = Vec::new();
        for seed in &seeds {
            match node_conn(&creds, seed, &t).await {
                Ok(mut c) => match redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async::<String>(&mut c)
                    .await
                {
                    Ok(text) => {
                        nodes = parse_nodes(&text, seed);
                        break;
                    }
                    Err(e) => last = Some(redis_error(e, &t, "CLUSTER NODES")),
                },
                Err(e) => last = Some(e),
            }
        }
        if nodes.is_empty() {
            return Err(last.unwrap_or_else(|| {
                OpError::bad_input("a redis+cluster:// URL needs at least one seed host:port")
            }));
        }
        let tasks = nodes.into_iter().map(|addr| {
            let (creds, t, cmd) = (creds.clone(), t.clone(), cmd.clone());
            async move {
                let r = async {
                    let mut c = node_conn(&creds, &addr, &t).await?;
                    let started = Instant::now();
                    let v: String = cmd
                        .query_async(&mut c)
                        .await
                        .map_err(|e| redis_error(e, &t, what))?;
                    Ok((v, started.elapsed().as_secs_f64() * 1000.0))
                }
                .await;
                (addr, r)
            }
        });
        // Spawned so the nodes are asked concurrently; awaited in order.
        let handles: Vec<_> = tasks.map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            if let Ok(r) = h.await {
                out.push(r);
            }
        }
        Ok(out)
    })
}

pub(super) fn ping(call: &mut Call) -> Result<Dynamic, OpError> {
    let mut slowest = 0f64;
    for (addr, r) in on_each_node(call, redis::cmd("PING"), "PING")? {
        let (_, ms) = r.map_err(|e| OpError {
            message: format!("cluster node {addr}: {}", e.message),
            ..e
        })?;
        slowest = slowest.max(ms);
    }
    Ok(Dynamic::from_float((slowest * 10.0).round() / 10.0))
}

pub(super) fn info(call: &mut Call, section: Option<&str>) -> Result<Dynamic, OpError> {
    let mut cmd = redis::cmd("INFO");
    if let Some(s) = section {
        cmd.arg(s);
    }
    let mut out = Map::new();
    for (addr, r) in on_each_node(call, cmd, "INFO")? {
        let (text, _) = r.map_err(|e| OpError {
            message: format!("cluster node {addr}: {}", e.message),
            ..e
        })?;
        out.insert(
            addr.into(),
            Dynamic::from_map(select_section(parse_info(&text), section)),
        );
    }
    Ok(Dynamic::from_map(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_seeds() {
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                    b2 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-10922\n\
                    c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected\n\
                    d4 :0@0 master,noaddr - 0 0 0 disconnected\n";
        assert_eq!(
            parse_nodes(text, "127.0.0.1:7000"),
            vec!["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
        // A node that has not learnt its own IP yet is reached at the seed's host.
        let fresh = "a1 :7000@17000 myself,master - 0 0 1 connected\n";
        assert_eq!(parse_nodes(fresh, "10.0.0.5:7000"), vec!["10.0.0.5:7000"]);
        assert_eq!(
            split("redis+cluster://u:p@h1:1,h2:2/"),
            (
                "u:p@".to_string(),
                vec!["h1:1".to_string(), "h2:2".to_string()]
            )
        );
    }
}
