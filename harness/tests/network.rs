//! Network faults on real traffic between real namespaces: partition (both ways, one way),
//! loss, bandwidth and delay, each measured; healing removes exactly what was added; and a
//! network torn down leaves no namespace, bridge or rule. Needs root, iproute2 and iptables:
//! without them each test fails with `NOT RUN:` — it never passes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::cluster::netns::{self, sh, Network};
use harness::scenario::Cut;

fn require_root() {
    if let Some(why) = netns::unavailable_reason() {
        panic!("NOT RUN: {why}");
    }
}

fn unique_run(name: &str) -> String {
    format!(
        "nettest-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000
    )
}

/// A python3 one-liner server in a namespace; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TCP_ECHO: &str = "import socket,threading\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',7000));s.listen(64)\ndef h(c):\n  while True:\n    d=c.recv(65536)\n    if not d: break\n    c.sendall(d[:1])\n  c.close()\nwhile True:\n  c,_=s.accept();threading.Thread(target=h,args=(c,),daemon=True).start()";
/// Counts UDP datagrams on 7001; answers the count on TCP 7002.
const UDP_COUNT: &str = "import socket,threading\nn=[0]\ndef count():\n  t=socket.socket();t.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);t.bind(('0.0.0.0',7002));t.listen(8)\n  while True:\n    c,_=t.accept();c.sendall(str(n[0]).encode());c.close()\nthreading.Thread(target=count,daemon=True).start()\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',7001))\nwhile True:\n  s.recvfrom(2048);n[0]+=1";

fn in_ns(ns: Option<&str>, program: &[&str]) -> Command {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            c.args(program);
            c
        }
        None => {
            let mut c = Command::new(program[0]);
            c.args(&program[1..]);
            c
        }
    };
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn servers(net: &Network, node: &str) -> (Server, Server) {
    let ns = net.hosts[node].ns.clone();
    let tcp = Server(
        in_ns(Some(&ns), &["python3", "-c", TCP_ECHO])
            .spawn()
            .unwrap(),
    );
    let udp = Server(
        in_ns(Some(&ns), &["python3", "-c", UDP_COUNT])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    (tcp, udp)
}

/// A real TCP connection from `from` (a node, or the root namespace) to `to`: connect,
/// send a byte, get it back, within 2 s.
fn tcp_ok(net: &Network, from: Option<&str>, to: &str) -> bool {
    let ns = from.map(|f| net.hosts[f].ns.clone());
    let script = format!(
        "import socket\ns=socket.create_connection(('{}',7000),timeout=2)\ns.sendall(b'x')\nassert s.recv(1)==b'x'",
        net.hosts[to].addr
    );
    in_ns(ns.as_deref(), &["python3", "-c", &script])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// How many datagrams `node` has counted so far (asked over the node's own loopback,
/// which no fault touches).
fn udp_count(net: &Network, node: &str) -> u32 {
    let script = "import socket\ns=socket.create_connection(('127.0.0.1',7002),timeout=10)\nprint(s.recv(64).decode())";
    let out = in_ns(Some(&net.hosts[node].ns), &["python3", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "count from {node}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Sends `n` UDP datagrams from `from` (a node, or the root namespace) to `to`; returns how
/// many `to` counted.
fn udp_delivered(net: &Network, from: Option<&str>, to: &str, n: u32) -> u32 {
    let before = udp_count(net, to);
    let ns = from.map(|f| net.hosts[f].ns.clone());
    let script = format!(
        "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range({n}):\n  try: s.sendto(b'x'*100,('{}',7001))\n  except OSError: pass  # a packet dropped on the way out is EPERM\n  time.sleep(0.001)",
        net.hosts[to].addr
    );
    assert!(in_ns(ns.as_deref(), &["python3", "-c", &script])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    udp_count(net, to) - before
}

/// How a TCP connect from `from` to `to` ends within 3 s: `ok`, `refused`, `timeout` (or
/// another exception's name).
fn connect_outcome(net: &Network, from: &str, to: &str) -> String {
    let script = format!(
        "import socket\ntry:\n  socket.create_connection(('{}',7000),timeout=3)\n  print('ok')\nexcept ConnectionRefusedError: print('refused')\nexcept socket.timeout: print('timeout')\nexcept Exception as e: print(type(e).__name__)",
        net.hosts[to].addr
    );
    let out = in_ns(Some(&net.hosts[from].ns), &["python3", "-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn chain_rules(net: &Network, node: &str) -> usize {
    let ns = net.hosts[node].ns.clone();
    sh(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "iptables",
        "-w",
        "-S",
        net.chain(),
    ])
    .unwrap()
    .lines()
    .filter(|l| l.starts_with("-A"))
    .count()
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_rejecting_partition_refuses_tcp_where_a_dropping_one_lets_it_wait() {
    require_root();
    let mut net =
        Network::create(&unique_run("rej"), &["a".into(), "b".into(), "c".into()]).unwrap();
    let _sa = servers(&net, "a");
    let _sb = servers(&net, "b");
    let _sc = servers(&net, "c");
    assert_eq!(connect_outcome(&net, "a", "b"), "ok", "baseline");

    // seed 000's firewall: a connect across the cut is refused, both ways
    net.partition("split", &["a".into()], &["b".into()], true, Cut::Reject)
        .unwrap();
    assert_eq!(connect_outcome(&net, "a", "b"), "refused");
    assert_eq!(connect_outcome(&net, "b", "a"), "refused");
    assert_eq!(
        udp_delivered(&net, Some("a"), "b", 50),
        0,
        "what is not TCP is dropped"
    );
    assert_eq!(
        connect_outcome(&net, "a", "c"),
        "ok",
        "the rest is untouched"
    );
    net.heal(Some("split")).unwrap();
    assert_eq!(
        chain_rules(&net, "a"),
        0,
        "healing removed both kinds of rule"
    );
    assert_eq!(connect_outcome(&net, "a", "b"), "ok");

    // the default drops: the same connect waits out its timeout
    net.partition("cut", &["a".into()], &["b".into()], true, Cut::Drop)
        .unwrap();
    assert_eq!(connect_outcome(&net, "a", "b"), "timeout");
    net.heal(None).unwrap();
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn partition_both_ways_and_one_way_on_real_tcp_and_udp() {
    require_root();
    let mut net =
        Network::create(&unique_run("part"), &["a".into(), "b".into(), "c".into()]).unwrap();
    let _sa = servers(&net, "a");
    let _sb = servers(&net, "b");
    let _sc = servers(&net, "c");
    assert!(
        tcp_ok(&net, Some("a"), "b") && tcp_ok(&net, Some("b"), "a") && tcp_ok(&net, None, "a"),
        "baseline connectivity"
    );

    net.partition("ab", &["a".into()], &["b".into()], true, Cut::Drop)
        .unwrap();
    assert!(!tcp_ok(&net, Some("a"), "b"), "a cannot reach b");
    assert!(!tcp_ok(&net, Some("b"), "a"), "b cannot reach a");
    assert!(
        tcp_ok(&net, Some("a"), "c") && tcp_ok(&net, Some("c"), "b"),
        "the rest of the network is untouched"
    );
    assert!(
        tcp_ok(&net, None, "a") && tcp_ok(&net, None, "b"),
        "clients still reach both"
    );
    net.heal(Some("ab")).unwrap();
    assert_eq!(
        chain_rules(&net, "a"),
        0,
        "healing removed exactly what was added"
    );
    assert!(tcp_ok(&net, Some("a"), "b") && tcp_ok(&net, Some("b"), "a"));

    // one way: packets from a to b are dropped, packets from b to a arrive
    net.partition("a-to-b", &["a".into()], &["b".into()], false, Cut::Drop)
        .unwrap();
    assert!(
        !tcp_ok(&net, Some("a"), "b"),
        "a cannot open a connection to b"
    );
    assert_eq!(
        udp_delivered(&net, Some("b"), "a", 50),
        50,
        "b's datagrams reach a"
    );
    assert_eq!(
        udp_delivered(&net, Some("a"), "b", 50),
        0,
        "none of a's datagrams reach b"
    );
    assert_eq!(udp_delivered(&net, Some("c"), "b", 50), 50, "c's do");
    net.heal(None).unwrap();
    assert!(tcp_ok(&net, Some("a"), "b"));

    // clients as a group: the workers cut off from a node
    net.partition("cl", &["clients".into()], &["c".into()], true, Cut::Drop)
        .unwrap();
    assert!(!tcp_ok(&net, None, "c"));
    assert!(tcp_ok(&net, Some("a"), "c"), "nodes still reach c");
    net.heal(Some("cl")).unwrap();
    assert!(tcp_ok(&net, None, "c"));
    assert!(
        net.heal(Some("cl")).is_err(),
        "healing a fault twice is an error"
    );
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn loss_drops_about_the_asked_share_of_real_packets() {
    require_root();
    let mut net = Network::create(&unique_run("loss"), &["a".into(), "b".into()]).unwrap();
    let _s = servers(&net, "b");
    assert_eq!(
        udp_delivered(&net, None, "b", 400),
        400,
        "no loss before the fault"
    );
    net.loss("lossy", "b", 0.3).unwrap();
    let got = udp_delivered(&net, None, "b", 400);
    println!("loss 0.3: {got} of 400 datagrams delivered");
    assert!(
        (200..=340).contains(&got),
        "expected about 280 of 400, got {got}"
    );
    net.heal(Some("lossy")).unwrap();
    assert_eq!(udp_delivered(&net, None, "b", 400), 400, "healed");
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn bandwidth_limits_a_real_transfer() {
    require_root();
    let mut net = Network::create(&unique_run("bw"), &["a".into()]).unwrap();
    let _s = servers(&net, "a");
    let addr = net.hosts["a"].addr;
    // 1 MiB to the echo server (which answers one byte per read) and wait for the close
    let send = format!(
        "import socket,time\ns=socket.create_connection(('{addr}',7000),timeout=30)\nt=time.time()\ns.sendall(b'x'*(1<<20))\ns.shutdown(socket.SHUT_WR)\nwhile s.recv(65536): pass\nprint(time.time()-t)"
    );
    let timed = |net: &Network| -> f64 {
        let _ = net;
        let out = in_ns(None, &["python3", "-c", &send]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(f64::MAX)
    };
    let free = timed(&net);
    net.bandwidth("slow", "a", "2mbit").unwrap();
    let limited = timed(&net);
    net.heal(Some("slow")).unwrap();
    let healed = timed(&net);
    println!("1 MiB: {free:.2}s free, {limited:.2}s at 2mbit, {healed:.2}s healed");
    // 8 Mbit at 2 Mbit/s is 4 s; allow for the burst and timing slack
    assert!(limited >= 3.0, "the limit is applied: {limited:.2}s");
    assert!(limited < 30.0);
    assert!(
        healed < limited / 2.0,
        "healing lifts it: {healed:.2}s vs {limited:.2}s"
    );
    let veth = net.hosts["a"].veth.clone();
    assert!(
        !sh(&["tc", "qdisc", "show", "dev", &veth])
            .unwrap()
            .contains("tbf"),
        "no qdisc left after heal"
    );
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn delay_is_measured_where_the_kernel_has_netem_and_refused_where_it_does_not() {
    require_root();
    let mut net = Network::create(&unique_run("delay"), &["a".into()]).unwrap();
    let _s = servers(&net, "a");
    if netns::netem_available() {
        let rtt = |net: &Network| {
            let script = format!("import socket,time\ns=socket.create_connection(('{}',7000),timeout=5)\nt=time.time()\nfor i in range(20):\n  s.sendall(b'x'); s.recv(1)\nprint((time.time()-t)/20)", net.hosts["a"].addr);
            let out = in_ns(None, &["python3", "-c", &script]).output().unwrap();
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<f64>()
                .unwrap()
        };
        let before = rtt(&net);
        net.delay("slow", "a", 100, 0).unwrap();
        let during = rtt(&net);
        assert!(
            during - before >= 0.08,
            "100 ms added: {before:.3}s → {during:.3}s"
        );
        net.heal(Some("slow")).unwrap();
    } else {
        // no netem: a node without a delaying proxy in front of it refuses the fault by
        // name and keeps nothing of it
        let err = net.delay("slow", "a", 100, 0).unwrap_err().to_string();
        assert!(err.contains("netem"), "{err}");
        assert!(
            net.active_faults().is_empty(),
            "a refused fault leaves nothing active"
        );
        // with one (as brokers on namespace hosts have), the same fault is measured
        // through it: 100 ms more per round trip, and none after the heal
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let target: std::net::SocketAddr = format!("{}:7000", net.hosts["a"].addr).parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("a.delay");
        let c = control.clone();
        // in this process: it ends with the test
        std::thread::spawn(move || harness::fault::proxy::run(listen, target, c));
        std::thread::sleep(Duration::from_millis(300));
        net.proxies.insert("a".into(), control);
        let loopback = std::net::Ipv4Addr::LOCALHOST;
        let before = rtt(loopback, port);
        net.delay("slow", "a", 100, 0).unwrap();
        std::thread::sleep(Duration::from_millis(300)); // the proxy reads it every 100 ms
        let during = rtt(loopback, port);
        net.heal(Some("slow")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let after = rtt(loopback, port);
        assert!(
            during - before >= 0.08 && after - before < 0.05,
            "100 ms added through the proxy, removed by the heal: {before:.3}s → {during:.3}s → {after:.3}s"
        );
    }
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn teardown_leaves_no_namespace_bridge_or_rule() {
    require_root();
    let run = unique_run("teardown");
    let tag = netns::run_tag(&run);
    {
        let mut net = Network::create(&run, &["a".into(), "b".into()]).unwrap();
        net.partition("p", &["a".into()], &["b".into()], true, Cut::Reject)
            .unwrap();
        net.bandwidth("bw", "b", "1mbit").unwrap();
        assert!(sh(&["ip", "netns", "list"])
            .unwrap()
            .contains(&format!("kmh-{tag}-a")));
        assert!(sh(&["iptables", "-w", "-S", "FORWARD"])
            .unwrap()
            .contains(&format!("kmh.run={run}")));
    } // dropped with faults active
    assert!(!sh(&["ip", "netns", "list"]).unwrap().contains(&tag));
    assert!(!sh(&["ip", "link", "show"]).unwrap().contains(&tag));
    assert!(!sh(&["iptables-save"]).unwrap().contains(&run));
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn cleanup_removes_what_a_dead_run_left() {
    require_root();
    let run = unique_run("dead");
    let tag = netns::run_tag(&run);
    let net = Network::create(&run, &["a".into(), "b".into()]).unwrap();
    std::mem::forget(net); // as if the coordinator was SIGKILLed
    assert!(sh(&["ip", "netns", "list"]).unwrap().contains(&tag));
    let found = netns::cleanup(&harness::cluster::CleanupScope::run(&run));
    assert_eq!(found.namespaces.len(), 2, "{found:?}");
    assert_eq!(found.bridges.len(), 1, "{found:?}");
    assert_eq!(found.rules.len(), 1, "{found:?}");
    assert!(!sh(&["ip", "netns", "list"]).unwrap().contains(&tag));
    assert!(!sh(&["iptables-save"]).unwrap().contains(&run));
    let again = netns::cleanup(&harness::cluster::CleanupScope::run(&run));
    assert!(again.namespaces.is_empty() && again.bridges.is_empty() && again.rules.is_empty());
    let _ = Instant::now();
}

/// Mean round trip of 20 one-byte echoes through `addr:port`, from the root namespace.
fn rtt(addr: std::net::Ipv4Addr, port: u16) -> f64 {
    let script = format!("import socket,time\ns=socket.create_connection(('{addr}',{port}),timeout=10)\nt=time.time()\nfor i in range(20):\n  s.sendall(b'x'); s.recv(1)\nprint((time.time()-t)/20)");
    let out = in_ns(None, &["python3", "-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("rtt: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn delay_through_the_proxy_is_measured_on_real_traffic_and_healed() {
    require_root();
    let mut net = Network::create(&unique_run("proxy"), &["a".into()]).unwrap();
    let _s = servers(&net, "a");
    let ns = net.hosts["a"].ns.clone();
    let addr = net.hosts["a"].addr;
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("delay.ctl");
    // the proxy in a's namespace, in front of the echo server, as a run starts it
    let _proxy = Server(
        in_ns(
            Some(&ns),
            &[
                env!("CARGO_BIN_EXE_harness"),
                "proxy",
                "--listen",
                &format!("{addr}:7100"),
                "--target",
                "127.0.0.1:7000",
                "--control",
                control.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    net.proxies.insert("a".into(), control.clone());
    let before = rtt(addr, 7100);
    net.delay("slow", "a", 100, 0).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // the proxy reads its control every 100 ms
    let during = rtt(addr, 7100);
    net.heal(Some("slow")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = rtt(addr, 7100);
    println!(
        "round trip through the proxy: {before:.4}s, {during:.4}s with 100 ms, {after:.4}s healed"
    );
    assert!(
        during - before >= 0.09,
        "100 ms added to each round trip: {before:.4}s → {during:.4}s"
    );
    assert!(during < 0.5);
    assert!(after < before + 0.03, "healed: {after:.4}s");
    assert!(net.active_faults().is_empty());
}
