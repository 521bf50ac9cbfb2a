//! Headless Chromium for tests of the web pages: Debian's `chromium` driven over
//! WebDriver by `chromedriver` (both installed by `scripts/test`), with helpers
//! for what page tests do (fill, submit, read text, run axe-core, screenshots).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::process::{Command, Stdio};

/// chromedriver, stopped with the browser.
#[derive(Debug)]
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headless Chromium driven over WebDriver (chromedriver), with a profile of
/// its own; `./scripts/test` installs Debian's `chromium` and `chromium-driver`.
#[derive(Debug)]
pub struct Browser {
    pub client: fantoccini::Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        let driver_path = std::env::var("AFTERSALES_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium =
            std::env::var("AFTERSALES_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&driver_path).exists(),
            "{driver_path} is missing: ./scripts/test installs chromium and chromium-driver"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Child(
            Command::new(&driver_path)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = crate::eventually(
            || {
                let capabilities = capabilities.clone();
                async move {
                    // chromedriver is on loopback: plain HTTP, no TLS stack.
                    fantoccini::ClientBuilder::new(
                        hyper_util::client::legacy::connect::HttpConnector::new(),
                    )
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
                    .map_err(|e| e.to_string())
                }
            },
            Result::is_ok,
        )
        .await
        .unwrap();
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, Vec::new()).await.unwrap()
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn fill(&self, css: &str, value: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }

    pub async fn submit(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Clicks `css` and waits until the page it was on has been replaced, so
    /// what is looked for next is the new page's, not the old one's.
    pub async fn submit_and_reload(&self, css: &str) {
        let old = self
            .client
            .find(fantoccini::Locator::Css("html"))
            .await
            .unwrap();
        self.submit(css).await;
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{css}: the page was not replaced within 10 s");
    }

    /// Signs in to the staff console as `username` (ending any session before),
    /// with an authenticator's `code` where the account has one.
    pub async fn staff_sign_in(
        &self,
        web: &str,
        username: &str,
        password: &str,
        code: Option<&str>,
    ) {
        self.client
            .goto(&format!("{web}/staff/sign-in"))
            .await
            .unwrap();
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        if let Some(code) = code {
            self.fill("#totp", code).await;
        }
        self.submit("main form button").await;
    }

    /// The serious and critical WCAG violations axe-core finds on the page.
    pub async fn accessibility_violations(&self) -> Vec<serde_json::Value> {
        let axe = std::env::var("AFTERSALES_AXE_CORE").unwrap_or_else(|_| {
            format!(
                "{}/.cache/aftersales/node/node_modules/axe-core/axe.min.js",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let source = std::fs::read_to_string(&axe)
            .unwrap_or_else(|e| panic!("{axe}: {e} (./scripts/test installs axe-core)"));
        self.client.execute(&source, Vec::new()).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] })
                   .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html) }))))
                   .catch(e => done([{ id: 'axe-failed', error: String(e) }]));",
                Vec::new(),
            )
            .await
            .unwrap();
        found.as_array().cloned().expect("axe answered with a list")
    }

    /// The page at 360 and 1280 pixels wide, as PNGs in `folder`.
    pub async fn screenshots(&self, folder: &std::path::Path, name: &str) {
        for width in [360, 1280] {
            self.client.set_window_size(width, 900).await.unwrap();
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(folder.join(format!("{name}-{width}.png")), png).unwrap();
        }
    }
}
