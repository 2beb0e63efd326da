//! Output files named on the command line (traces, plots) never replace an
//! input: `--trace-out x.yaml` once wrote a trace over the scenario it ran
//! (found by the bad-input adversary).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Refuses `out` (given as `flag`, to hold `what`) when it is one of
/// `inputs` or a YAML file — scenarios, clusters and configs are YAML, and
/// no output of these commands is.
pub fn not_an_input(out: &Path, flag: &str, what: &str, inputs: &[PathBuf]) -> Result<()> {
    let yaml = out
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if yaml {
        bail!(
            "{flag} {}: would write {what} into a YAML file (scenarios, clusters and configs are YAML); name another file",
            out.display()
        );
    }
    if let Ok(out_real) = out.canonicalize() {
        if inputs
            .iter()
            .any(|i| i.canonicalize().is_ok_and(|r| r == out_real))
        {
            bail!(
                "{flag} {}: that is an input of this run; name another file",
                out.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_over_an_input_or_a_yaml_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("krrish-output-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("cluster.conf");
        std::fs::write(&input, "x").unwrap();
        let err = not_an_input(
            &input,
            "--plot",
            "an SVG plot",
            std::slice::from_ref(&input),
        );
        assert!(err.unwrap_err().to_string().contains("is an input"));
        let err = not_an_input(&dir.join("s.YAML"), "--trace-out", "a trace", &[]);
        assert!(err.unwrap_err().to_string().contains("--trace-out"));
        assert!(not_an_input(&dir.join("t.log"), "--trace-out", "a trace", &[input]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
