//! The URL mix file (`--mix`): lines of `weight URL`, `#` comments, and
//! the cheap weighted pick a connection makes per request.

use std::path::Path;

use crate::config::{ConfigError, Url};

/// Reads a mix file: one `weight URL` per line, blank lines and lines
/// starting with `#` ignored, weights whole numbers from 1.
pub fn read_mix(path: &Path) -> Result<Vec<(u32, Url)>, ConfigError> {
    let file_err = |why: String| ConfigError::File {
        flag: "--mix",
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_err = |why: String| file_err(format!("line {}: {why}", i + 1));
        let (weight, url) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| line_err(format!("expected \"WEIGHT URL\", got {line:?}")))?;
        let weight: u32 =
            weight.parse().ok().filter(|w| *w > 0).ok_or_else(|| {
                line_err(format!("weight {weight:?} is not a whole number from 1"))
            })?;
        let url = Url::parse(url.trim()).map_err(|e| line_err(e.to_string()))?;
        out.push((weight, url));
    }
    if out.is_empty() {
        return Err(file_err("no `weight URL` line in it".into()));
    }
    Ok(out)
}

/// Picks target indexes by weight with a per-connection xorshift generator:
/// no allocation and no shared state per pick.
#[derive(Debug, Clone)]
pub struct Picker {
    cumulative: Vec<u64>,
    state: u64,
}

impl Picker {
    /// A picker over `weights`, seeded per connection so connections differ.
    pub fn new(weights: &[u32], seed: u64) -> Self {
        let mut total = 0u64;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += u64::from(*w);
                total
            })
            .collect();
        Picker {
            cumulative,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The index of the next target.
    pub fn next_index(&mut self) -> usize {
        if self.cumulative.len() == 1 {
            return 0;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let total = *self.cumulative.last().expect("at least one target");
        let r = self.state % total;
        self.cumulative.partition_point(|c| *c <= r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_file_reads_weights_and_skips_comments() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mix");
        std::fs::write(&p, "# visitors\n8 http://h/\n\n1 http://h/style.css\n").unwrap();
        let mix = read_mix(&p).unwrap();
        assert_eq!(mix.len(), 2);
        assert_eq!((mix[0].0, mix[1].1.path.as_str()), (8, "/style.css"));
    }

    #[test]
    fn mix_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mix");
        std::fs::write(&p, "1 http://h/\nzero http://h/x\n").unwrap();
        let err = read_mix(&p).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn picks_follow_the_weights() {
        let mut p = Picker::new(&[3, 1], 7);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[p.next_index()] += 1;
        }
        let share = f64::from(counts[0]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "{counts:?}");
    }
}
