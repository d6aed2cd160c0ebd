//! `ferry netcheck --receiver IP[:PORT] --fingerprint SHA256 --code CODE [options] [VOLUME ...]`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use crate::disk::sysfs::Roots;
use crate::job::HashKind;
use crate::proto::tls::parse_fingerprint;
use crate::source::netcheck::{NetReport, NetcheckConfig, Stage, netcheck};
use crate::units::human;

#[derive(Debug, Args)]
pub struct NetcheckArgs {
    /// The receiver's address (IP or IP:PORT; port 8703 by default). UDP
    /// probes go to the same port.
    #[arg(long)]
    pub receiver: String,
    /// The receiver's certificate fingerprint (SHA-256, 64 hex digits).
    #[arg(long)]
    pub fingerprint: String,
    /// The pairing code the receiver shows.
    #[arg(long)]
    pub code: String,
    /// UDP probes for latency, jitter and loss.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub probes: u32,
    /// Seconds of bulk data for the bandwidth measurement (at most 60).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// The transfer's rate limit in Mbit/s (0 = none), for the ETA.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub rate: u64,
    /// Worker threads for hashing and compression, as for `ferry send`.
    #[arg(long)]
    pub threads: Option<usize>,
    /// zstd level.
    #[arg(long, default_value_t = 1)]
    pub level: i32,
    #[arg(long, value_enum, default_value = "blake3")]
    pub hash: HashKind,
    /// Disks or image files to search for the PVs of named LVs.
    #[arg(long = "scan")]
    pub scan: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Volumes to estimate the transfer of (as `ferry send` names them);
    /// without any, only the network is measured.
    pub volumes: Vec<String>,
}

pub fn run(a: NetcheckArgs) -> anyhow::Result<i32> {
    let fp = parse_fingerprint(&a.fingerprint)?;
    let mut cfg = NetcheckConfig::new(&a.receiver, fp, &a.code, a.volumes);
    cfg.scan = a.scan;
    cfg.probes = a.probes;
    cfg.bandwidth_secs = a.seconds;
    cfg.rate_mbit = a.rate;
    if let Some(t) = a.threads {
        cfg.threads = t.max(1);
    }
    cfg.level = a.level;
    cfg.hash = a.hash.into();
    cfg.roots = Roots::system();
    // On a terminal, say which step is running (on stderr: stdout is the result).
    let show = !a.json && std::io::stderr().is_terminal();
    let mut last = String::new();
    let r = netcheck(&cfg, |s| {
        let step = step(&s);
        if show && !step.is_empty() && step != last {
            let _ = writeln!(std::io::stderr(), "netcheck: {step}");
            last = step;
        }
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", table(&r));
        for w in &r.warnings {
            eprintln!("ferry: warning: {w}");
        }
    }
    Ok(0)
}

fn step(s: &Stage) -> String {
    match s {
        Stage::OpeningVolumes => "opening the volumes".into(),
        Stage::Connecting { receiver } => format!("connecting to {receiver}"),
        Stage::Probing { total, .. } => format!("{total} UDP probes"),
        Stage::Bandwidth { total_secs, .. } => format!("bandwidth, {total_secs} s"),
        Stage::DiskRead { .. } => "reading a sample of the volumes".into(),
        Stage::Compression { .. } => "compressing the sample".into(),
        Stage::Done => String::new(),
    }
}

/// The report as an aligned two-column table.
pub fn table(r: &NetReport) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let name = if r.receiver_name.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.receiver_name)
    };
    rows.push(("receiver", format!("{}{name}", r.receiver)));
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    rows.push((
        "latency",
        format!(
            "{} / {} / {} ms (min / avg / max)",
            ms(r.latency_min_ms),
            ms(r.latency_avg_ms),
            ms(r.latency_max_ms)
        ),
    ));
    rows.push(("jitter", format!("{} ms", ms(r.jitter_ms))));
    rows.push((
        "packet loss",
        format!(
            "{:.1}% ({} of {} UDP probes answered)",
            r.loss_percent, r.probes_received, r.probes_sent
        ),
    ));
    rows.push((
        "bandwidth",
        format!(
            "{:.1} Mbit/s ({} in {:.1} s)",
            r.bandwidth_mbit_s,
            human(r.bandwidth_bytes),
            r.bandwidth_secs
        ),
    ));
    if let (Some(rate), Some(sample)) = (r.disk_read_mb_s, r.sample_bytes) {
        rows.push((
            "disk read",
            format!("{rate:.1} MB/s ({} sampled)", human(sample)),
        ));
    }
    if let (Some(rate), Some(ratio), Some(t)) = (
        r.compression_mb_s,
        r.compression_ratio,
        r.compression_threads,
    ) {
        rows.push((
            "compression",
            format!("{rate:.1} MB/s on {t} thread(s), ratio {ratio:.2}"),
        ));
    }
    if let Some(used) = r.used_bytes {
        let wire = r.estimated_wire_bytes.map_or(String::new(), |w| {
            format!(", about {} on the wire", human(w))
        });
        rows.push((
            "used data",
            format!("{} in {} volume(s){wire}", human(used), r.volumes.len()),
        ));
    }
    if r.rate_limit_mbit_s > 0 {
        rows.push(("rate limit", format!("{} Mbit/s", r.rate_limit_mbit_s)));
    }
    if let (Some(eta), Some(neck)) = (r.eta_seconds, r.bottleneck) {
        rows.push(("ETA", format!("{} (bottleneck: {neck})", duration(eta))));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// `42 s`, `12 min 05 s`, `3 h 07 min`.
pub fn duration(secs: f64) -> String {
    let s = secs.ceil().max(0.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0.2), "1 s");
        assert_eq!(duration(59.0), "59 s");
        assert_eq!(duration(725.0), "12 min 05 s");
        assert_eq!(duration(3.0 * 3600.0 + 420.0), "3 h 07 min");
    }

    #[test]
    fn the_table_lines_up_and_skips_what_was_not_measured() {
        let r = NetReport {
            receiver: "10.0.0.5:8703".into(),
            receiver_name: "rx".into(),
            probes_sent: 50,
            loss_percent: 100.0,
            bandwidth_mbit_s: 940.0,
            bandwidth_bytes: 350 << 20,
            bandwidth_secs: 3.1,
            ..Default::default()
        };
        let t = table(&r);
        assert!(t.starts_with("receiver     10.0.0.5:8703 (rx)\n"), "{t}");
        assert!(t.contains("latency      - / - / - ms"), "{t}");
        assert!(
            t.contains("packet loss  100.0% (0 of 50 UDP probes answered)"),
            "{t}"
        );
        assert!(!t.contains("ETA") && !t.contains("disk read"), "{t}");
    }
}
