//! The Python chatvault 0.1.0 on boto3, driven by the `python` section of the dynamo
//! benchmark: `load.py` (next to this file) in a child process that the benchmark takes
//! turns with, one load each at a time, so both see the same machine and emulator.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The script, next to this file.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/load.py");

/// The interpreter with the Python `chatvault` and boto3 installed
/// (`CHATVAULT_PYTHON_CHATVAULT`, else `scripts/python-chatvault.sh`'s venv), or why there
/// is none.
pub(crate) fn interpreter() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CHATVAULT_PYTHON_CHATVAULT").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/python-chatvault.sh"
    );
    let out = Command::new("bash")
        .args([script, "path"])
        .output()
        .map_err(|e| format!("cannot run bash {script}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `load.py` running: its table holds one conversation of the messages asked for.
pub(crate) struct PythonLoads {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The table the script made (it deletes it when it ends).
    pub(crate) table: String,
}

impl PythonLoads {
    /// Starts `load.py` with `python`: it writes a conversation of `messages` messages
    /// (this waits for that). The error is the script's own (its standard error).
    pub(crate) fn start(python: &PathBuf, messages: usize) -> Result<Self, String> {
        let mut child = Command::new(python)
            .arg(SCRIPT)
            .arg(messages.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the script's pipes are missing".into());
        };
        let mut loads = PythonLoads {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            table: String::new(),
        };
        let ready = loads.line()?;
        match ready.split_whitespace().collect::<Vec<_>>()[..] {
            ["ready", table, _, n] if n == messages.to_string() => {
                loads.table = table.to_owned();
                Ok(loads)
            }
            _ => Err(format!("unexpected first line from load.py: {ready:?}")),
        }
    }

    /// One line of the script's output; at its end, the script's standard error.
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => Ok(line),
            Ok(_) => Err(self.failure()),
            Err(e) => Err(format!("reading from load.py: {e}")),
        }
    }

    /// Why the script ended: the last line of its standard error (a traceback's is the
    /// exception), once it has exited.
    fn failure(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        match stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
            Some(why) => format!("load.py: {why}"),
            None => "load.py ended without saying why".into(),
        }
    }

    /// One load of the whole conversation through the Python package's API, as the
    /// script timed it (`time.perf_counter`), and the messages it returned.
    pub(crate) fn load(&mut self) -> Result<(Duration, usize), String> {
        writeln!(self.stdin, "load").map_err(|e| format!("writing to load.py: {e}"))?;
        self.stdin
            .flush()
            .map_err(|e| format!("writing to load.py: {e}"))?;
        let line = self.line()?;
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["load", seconds, count] => {
                let seconds: f64 = seconds
                    .parse()
                    .map_err(|e| format!("load.py's time {seconds:?}: {e}"))?;
                let count = count
                    .parse()
                    .map_err(|e| format!("load.py's count {count:?}: {e}"))?;
                Ok((Duration::from_secs_f64(seconds), count))
            }
            _ => Err(format!("unexpected line from load.py: {line:?}")),
        }
    }

    /// Ends the script, which deletes its table.
    pub(crate) fn finish(mut self) -> Result<(), String> {
        writeln!(self.stdin, "quit").map_err(|e| format!("writing to load.py: {e}"))?;
        drop(self.stdin);
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| format!("waiting for load.py: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}
