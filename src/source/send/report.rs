//! What a pass did: the report `ferry send` prints, saves and hands the TUI.

use crate::source::tally::{Tally, VolumeSummary};

/// What a pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SendReport {
    pub task: String,
    /// Chunks below this were already durable on the receiver (resume).
    pub resumed_at: u64,
    pub chunks: u64,
    pub chunks_sent: u64,
    pub zero_chunks: u64,
    /// Used bytes covered by the chunks sent.
    pub bytes: u64,
    /// Bytes of chunk data on the wire (after compression).
    pub wire_bytes: u64,
    /// Of the chunks sent, those sent as patches of the parts that differ
    /// from what the target held (comparison passes, protocol 2).
    pub chunks_patched: u64,
    /// Comparison passes: chunks whose hashes were compared.
    pub compared: u64,
    /// Verify pass: chunks the target does not hold as the source has them.
    pub mismatches: Vec<Mismatch>,
    pub seconds: f64,
    /// Of `seconds`: connecting, pairing and the receiver's check of the
    /// layout (its targets, their reservation) before the first chunk.
    pub seconds_connecting: f64,
    /// Of `seconds`: after the last chunk, until the receiver answered
    /// Finished (its last sync, the read-back, a plan's tables and steps).
    pub seconds_finishing: f64,
    /// Per volume: used, read, skipped, zero, sent, wire bytes and digest.
    pub volumes: Vec<VolumeSummary>,
    #[serde(skip)]
    pub(super) tally: Tally,
}

impl SendReport {
    /// Bytes of used data sent per second, for a sending pass; `None` for a
    /// comparison pass, whose rate would be of the few chunks it sent.
    pub fn used_rate(&self) -> Option<f64> {
        (self.compared == 0).then(|| self.bytes as f64 / self.seconds.max(1e-9))
    }

    /// What the pass sent, as the CLI and the TUI summarise it: `N chunks
    /// sent (Z zero[, P as patches of what the target held]), X of used data
    /// as W on the wire`.
    pub fn sent_line(&self) -> String {
        let patched = if self.chunks_patched > 0 {
            format!(
                ", {} as patches of what the target held",
                self.chunks_patched
            )
        } else {
            String::new()
        };
        format!(
            "{} chunks sent ({} zero{patched}), {} of used data as {} on the wire",
            self.chunks_sent,
            self.zero_chunks,
            crate::units::human(self.bytes),
            crate::units::human(self.wire_bytes)
        )
    }
}

/// A chunk that differs between source and target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    pub volume: String,
    pub offset: u64,
    pub len: u32,
}
