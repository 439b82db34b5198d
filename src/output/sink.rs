//! Where records go: the `-output` file (appended whole) and stdout.

use std::io::Write;

use super::{csv, render};
use crate::config::{ClientConfig, Format};
use crate::error::{Error, Result};
use crate::report::Report;

/// Appends `text` to `path` in one write on an O_APPEND descriptor, so concurrent runs never
/// interleave their records. `header`, if given, is written first when the file is empty; an
/// exclusive lock (flock) makes "empty?" and the write one step, so two runs starting on a new
/// file do not both write it.
pub fn append_whole(
    path: &std::path::Path,
    text: &str,
    header: Option<&str>,
) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.lock()?;
    let mut whole = String::new();
    if let Some(h) = header {
        if f.metadata()?.len() == 0 {
            whole.push_str(h);
        }
    }
    whole.push_str(text);
    let n = f.write(whole.as_bytes())?;
    if n != whole.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {n} of {} octets", whole.len()),
        ));
    }
    Ok(())
}

/// Writes `text` as the whole of `path`: into a temporary file beside it, then renamed over
/// it, so a reader never sees half a picture and a failed write leaves the old file alone.
pub fn write_whole(path: &std::path::Path, text: &str) -> Result<()> {
    let err = |e| Error::Output {
        path: path.display().to_string(),
        source: e,
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.as_deref().unwrap_or("twamp"),
        std::process::id()
    ));
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

/// Writes the report where the configuration says: the `-output` file (appended whole) and
/// stdout (unless `-q`). A CSV header goes to the file only when the file is new and `-header`
/// asked for one.
pub fn emit(cfg: &ClientConfig, r: &Report) -> Result<()> {
    if let Some(path) = &cfg.output {
        let header = (cfg.header && cfg.format == Format::Csv).then(csv::header);
        append_whole(path, &render(r, cfg.format, false), header.as_deref()).map_err(|e| {
            Error::Output {
                path: path.display().to_string(),
                source: e,
            }
        })?;
    }
    if !cfg.quiet {
        write_stdout(&render(r, cfg.format, cfg.header))?;
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) is the reader's choice, not our failure.
pub fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Output {
            path: "stdout".into(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_single_whole_writes() {
        let dir = std::env::temp_dir().join(format!("twamp-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.txt");
        append_whole(&p, "one\n", Some("h\n")).unwrap();
        append_whole(&p, "two\n", Some("h\n")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "h\none\ntwo\n",
            "header only into an empty file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
