//! `ferry netcheck`: before a transfer, measure what will limit it. Over the
//! network: latency, jitter and loss with UDP probes echoed on the data port
//! (`proto::udp`), and bandwidth by streaming filler Probe frames over the
//! real data path (TCP, TLS, pairing) for a few seconds. On the source: the
//! read speed of a sample of the selected volumes' used chunks, and the
//! speed and ratio of hashing and compressing that sample as the transfer
//! would. From these, an ETA for the selected volumes and what bounds it.
//!
//! The CLI and the TUI both call [`netcheck`]; it prints nothing and reports
//! progress through a callback. See docs/netcheck.md.

mod link;
mod sample;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::ensure;

use super::volumes::open_volumes;
use crate::disk::sysfs::Roots;
use crate::proto::message::HashAlgo;

/// The task name of a netcheck session (the receiver writes nothing for it).
pub const NETCHECK_TASK: &str = "netcheck";
/// How long to wait for probe replies after the last probe is sent; a reply
/// later than this after its own probe counts as lost.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);
/// The longest bandwidth run (the receiver refuses longer ones).
pub const MAX_BANDWIDTH_SECS: f64 = 60.0;
/// Payload of each bandwidth Probe frame.
pub const FILLER_LEN: usize = 1 << 20;
/// Of the disk sample, at most this much is kept in memory and compressed.
pub const COMPRESS_SAMPLE_BYTES: u64 = 32 << 20;
/// Bandwidth and disk progress is reported at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct NetcheckConfig {
    /// `IP[:PORT]` of the receiver; the UDP probes go to the same port.
    pub receiver: String,
    pub fingerprint: [u8; 32],
    pub code: String,
    /// Volumes to estimate the transfer of; none skips the disk and
    /// compression measurements and the ETA.
    pub volumes: Vec<String>,
    /// Extra disks to search for the PVs of named LVs.
    pub scan: Vec<PathBuf>,
    /// UDP probes to send.
    pub probes: u32,
    pub probe_interval: Duration,
    /// Length of the bandwidth run, seconds (0 < s <= 60).
    pub bandwidth_secs: f64,
    /// Worker threads for hashing and compression, as `ferry send --threads`.
    pub threads: usize,
    pub level: i32,
    pub hash: HashAlgo,
    /// The transfer's rate limit in Mbit/s (0 = none); only the ETA uses it.
    pub rate_mbit: u64,
    /// Read at most this many bytes of the volumes' used chunks ...
    pub sample_bytes: u64,
    /// ... for at most this long.
    pub sample_time: Duration,
    pub roots: Roots,
}

impl NetcheckConfig {
    /// Defaults for everything but where to and what.
    pub fn new(receiver: &str, fingerprint: [u8; 32], code: &str, volumes: Vec<String>) -> Self {
        NetcheckConfig {
            receiver: receiver.to_string(),
            fingerprint,
            code: code.to_string(),
            volumes,
            scan: Vec::new(),
            probes: 50,
            probe_interval: Duration::from_millis(20),
            bandwidth_secs: 3.0,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            level: 1,
            hash: HashAlgo::Blake3,
            rate_mbit: 0,
            sample_bytes: 256 << 20,
            sample_time: Duration::from_secs(3),
            roots: Roots::system(),
        }
    }
}

/// Where a netcheck is; passed to the progress callback.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Stage {
    OpeningVolumes,
    Connecting {
        receiver: String,
    },
    Probing {
        sent: u32,
        received: u32,
        total: u32,
    },
    Bandwidth {
        bytes: u64,
        secs: f64,
        total_secs: f64,
    },
    DiskRead {
        bytes: u64,
        total: u64,
    },
    Compression {
        bytes: u64,
    },
    Done,
}

/// What bounds the transfer's speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Bottleneck {
    #[serde(rename = "network")]
    Network,
    #[serde(rename = "disk")]
    Disk,
    #[serde(rename = "compression")]
    Compression,
    #[serde(rename = "rate limit")]
    RateLimit,
}

impl std::fmt::Display for Bottleneck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Bottleneck::Network => "network",
            Bottleneck::Disk => "disk",
            Bottleneck::Compression => "compression",
            Bottleneck::RateLimit => "rate limit",
        })
    }
}

/// The result of a netcheck. MB are 10^6 bytes, Mbit 10^6 bits. Fields that
/// could not be measured (no probe answered, no volumes given) are `None`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NetReport {
    /// The receiver's address and the name it gave in Welcome.
    pub receiver: String,
    pub receiver_name: String,
    pub probes_sent: u32,
    pub probes_received: u32,
    pub loss_percent: f64,
    /// Round-trip times of the answered probes.
    pub latency_min_ms: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Mean absolute difference between the round-trip times of consecutive
    /// answered probes (RFC 3550's D, averaged plainly instead of its 1/16
    /// running filter).
    pub jitter_ms: Option<f64>,
    /// Payload throughput of the bandwidth run: bytes the receiver counted,
    /// over the time from the first byte sent to its answer.
    pub bandwidth_mbit_s: f64,
    pub bandwidth_bytes: u64,
    pub bandwidth_secs: f64,
    pub volumes: Vec<String>,
    /// Used bytes of the selected volumes: what the transfer reads.
    pub used_bytes: Option<u64>,
    /// Bytes of used chunks read to measure the disk.
    pub sample_bytes: Option<u64>,
    pub disk_read_mb_s: Option<f64>,
    /// Hashing, zero detection, zstd and framing of (up to 32 MiB of) the
    /// sample on this many threads, in used bytes per second.
    pub compression_threads: Option<usize>,
    pub compression_mb_s: Option<f64>,
    /// Used bytes per byte of chunk frames.
    pub compression_ratio: Option<f64>,
    /// `used_bytes` over the ratio: chunk frames the transfer would send.
    pub estimated_wire_bytes: Option<u64>,
    /// The rate limit the ETA respects (0 = none).
    pub rate_limit_mbit_s: u64,
    pub eta_seconds: Option<f64>,
    pub bottleneck: Option<Bottleneck>,
    pub warnings: Vec<String>,
}

/// Run a netcheck. Connection, TLS, pairing and protocol failures are errors
/// (worded as `ferry send` words them); unanswered UDP probes are not: they
/// come back as 100% loss and a warning.
pub fn netcheck(
    cfg: &NetcheckConfig,
    mut progress: impl FnMut(Stage),
) -> anyhow::Result<NetReport> {
    ensure!(
        cfg.probes >= 1 && cfg.probes <= 10_000,
        "probes: give 1..10000, not {}",
        cfg.probes
    );
    ensure!(
        cfg.bandwidth_secs > 0.0 && cfg.bandwidth_secs <= MAX_BANDWIDTH_SECS,
        "the bandwidth run takes more than 0 and at most {MAX_BANDWIDTH_SECS} s, not {}",
        cfg.bandwidth_secs
    );
    let addr = crate::source::link::addr(&cfg.receiver)?;
    // Volumes first: a mistyped name fails before the network is measured.
    let volumes = if cfg.volumes.is_empty() {
        Vec::new()
    } else {
        progress(Stage::OpeningVolumes);
        open_volumes(&cfg.volumes, &cfg.scan, &cfg.roots)?
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let net = rt.block_on(link::network(cfg, addr, &mut progress))?;
    drop(rt);

    let mut report = NetReport {
        receiver: addr.to_string(),
        receiver_name: net.receiver_name,
        rate_limit_mbit_s: cfg.rate_mbit,
        volumes: cfg.volumes.clone(),
        ..Default::default()
    };
    net.probes.fill(&mut report);
    report.bandwidth_bytes = net.bytes;
    report.bandwidth_secs = net.secs;
    report.bandwidth_mbit_s = net.bytes as f64 * 8.0 / net.secs.max(1e-9) / 1e6;
    if !volumes.is_empty() {
        let sample = sample::read(cfg, &volumes, &mut progress)?;
        let comp = sample::compress(cfg, &sample.kept, &mut progress)?;
        let disk_rate = sample.bytes as f64 / sample.secs.max(1e-9);
        // Nothing used, nothing compressed: count the wire as the data.
        let wire_per_used = if comp.used > 0 {
            comp.wire as f64 / comp.used as f64
        } else {
            1.0
        };
        report.used_bytes = Some(sample.used);
        report.sample_bytes = Some(sample.bytes);
        report.disk_read_mb_s = Some(disk_rate / 1e6);
        report.compression_threads = Some(comp.threads);
        report.compression_mb_s = (comp.used > 0).then_some(comp.rate / 1e6);
        report.compression_ratio = (comp.used > 0).then_some(1.0 / wire_per_used);
        report.estimated_wire_bytes = Some((sample.used as f64 * wire_per_used).round() as u64);
        let (secs, neck) = eta(
            sample.used,
            wire_per_used,
            disk_rate,
            comp.rate,
            net.bytes as f64 / net.secs.max(1e-9),
            cfg.rate_mbit,
        );
        report.eta_seconds = Some(secs);
        report.bottleneck = Some(neck);
        if sample.used == 0 {
            report
                .warnings
                .push("the selected volumes have no used blocks: nothing to send".into());
        }
    }
    warn_network(&mut report, &net.probes, addr.port(), cfg.rate_mbit);
    progress(Stage::Done);
    Ok(report)
}

/// Seconds to move `used` bytes and the stage that bounds it. Rates are in
/// bytes per second: disk and compression of used bytes, network of bytes
/// on the wire (`wire_per_used` of each used byte); `rate_mbit` 0 is none.
/// The stages overlap in the pipeline, so the slowest one sets the pace.
pub fn eta(
    used: u64,
    wire_per_used: f64,
    disk: f64,
    compression: f64,
    network: f64,
    rate_mbit: u64,
) -> (f64, Bottleneck) {
    let per_used = |wire_rate: f64| wire_rate / wire_per_used.max(1e-9);
    let mut stages = vec![
        (Bottleneck::Network, per_used(network)),
        (Bottleneck::Disk, disk),
        (Bottleneck::Compression, compression),
    ];
    if rate_mbit > 0 {
        stages.push((
            Bottleneck::RateLimit,
            per_used(rate_mbit as f64 * 1e6 / 8.0),
        ));
    }
    let (neck, rate) = stages
        .into_iter()
        .fold((Bottleneck::Network, f64::INFINITY), |best, s| {
            if s.1 < best.1 { s } else { best }
        });
    (used as f64 / rate.max(1e-9), neck)
}

fn warn_network(report: &mut NetReport, probes: &link::Probes, port: u16, rate_mbit: u64) {
    let w = &mut report.warnings;
    if report.probes_received == 0 {
        let mut m = format!("UDP probes unanswered: is {port}/udp blocked?");
        if probes.refused {
            m.push_str(
                " (the receiver's host answered \"port unreachable\": nothing echoes probes \
                 on that port)",
            );
        }
        w.push(m);
    } else if report.probes_received < report.probes_sent {
        w.push(format!(
            "{:.1}% of UDP probes lost: a lossy link slows TCP down",
            report.loss_percent
        ));
    }
    if let Some(e) = &probes.send_error {
        w.push(format!("UDP probes: {e}"));
    }
    if rate_mbit > 0 && report.bandwidth_mbit_s < rate_mbit as f64 {
        w.push(format!(
            "the measured bandwidth ({:.0} Mbit/s) is below the rate limit ({rate_mbit} Mbit/s)",
            report.bandwidth_mbit_s
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_names_the_slowest_stage() {
        let mb = 1e6;
        // 1 GB used, halved on the wire; disk 500 MB/s, compression 300 MB/s,
        // network 100 MB/s of wire = 200 MB/s of used data.
        let (secs, neck) = eta(1_000_000_000, 0.5, 500.0 * mb, 300.0 * mb, 100.0 * mb, 0);
        assert_eq!(neck, Bottleneck::Network);
        assert!((secs - 5.0).abs() < 1e-9, "{secs}");
        // 400 Mbit/s = 50 MB/s of wire = 100 MB/s of used data.
        let (secs, neck) = eta(1_000_000_000, 0.5, 500.0 * mb, 300.0 * mb, 100.0 * mb, 400);
        assert_eq!(neck, Bottleneck::RateLimit);
        assert!((secs - 10.0).abs() < 1e-9, "{secs}");
        let (_, neck) = eta(1, 1.0, 50.0 * mb, 300.0 * mb, 100.0 * mb, 1000);
        assert_eq!(neck, Bottleneck::Disk);
        let (_, neck) = eta(1, 1.0, 500.0 * mb, 30.0 * mb, 100.0 * mb, 0);
        assert_eq!(neck, Bottleneck::Compression);
        assert_eq!(
            serde_json::to_value(Bottleneck::RateLimit).unwrap(),
            "rate limit"
        );
    }
}
