//! The WhatsApp side of the bridge, on whatsapp-rust 0.7: linking this box
//! as a companion device (`hearth pair`, the steps in [`link`]), forgetting
//! it (`hearth unpair`), the reachability check, and the running bridge
//! (`hearth bridge`, in `relay`): messages mapped by [`mapping`], queued
//! durably, forwarded to `serve`; replies sent as plain text.
//!
//! Holds only the transport session ([`backend`] on `store::session`);
//! must not open the Hearth store, index or model, and decides nothing
//! about who may talk to Hearth (that is `serve`'s gate).

pub mod backend;
pub mod link;
pub mod mapping;
mod relay;

pub use relay::{RunOptions, run, serve_backoff};

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use whatsapp_rust::prelude::*;

use self::backend::SessionBackend;
use self::link::{LinkEvent, Linking, Show, Step};
use self::mapping::Me;
use crate::paths::BridgePaths;
use crate::store::Create;
use crate::store::session::SessionDb;

/// Where WhatsApp's servers are, for the reachability check.
const WHATSAPP_HOST: &str = "web.whatsapp.com:443";
/// How long the reachability check may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `hearth pair` waits for the first QR code or pairing code.
const FIRST_CODE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long linking may take overall.
const LINK_TIMEOUT: Duration = Duration::from_secs(600);

/// Fails within seconds, with what to do, when this box cannot open a
/// connection to WhatsApp (no network, no DNS, a firewall). The host can
/// be overridden by `HEARTH_WHATSAPP_HOST` (tests).
pub async fn check_reachable() -> anyhow::Result<()> {
    let host = std::env::var("HEARTH_WHATSAPP_HOST").unwrap_or_else(|_| WHATSAPP_HOST.into());
    check_reachable_at(&host).await
}

async fn check_reachable_at(host: &str) -> anyhow::Result<()> {
    let addrs = match tokio::time::timeout(REACH_TIMEOUT, tokio::net::lookup_host(host)).await {
        Err(_) => anyhow::bail!(link::unreachable_message(&format!(
            "looking up {host} timed out"
        ))),
        Ok(Err(e)) => anyhow::bail!(link::unreachable_message(&format!(
            "cannot look up {host}: {e}"
        ))),
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
    };
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out"),
        }
    }
    anyhow::bail!(link::unreachable_message(&format!(
        "cannot connect to {host} ({last})"
    )))
}

/// The session database, opened (or created) for the bridge.
fn open_session(paths: &BridgePaths, create: Create) -> anyhow::Result<Arc<SessionDb>> {
    let db = SessionDb::open(&paths.state_dir, &paths.key_file, create).with_context(|| {
        format!(
            "opening the WhatsApp session in {}",
            paths.state_dir.display()
        )
    })?;
    Ok(Arc::new(db))
}

/// The account this box is linked to, if any.
async fn linked_account(backend: &SessionBackend) -> anyhow::Result<Option<Me>> {
    use whatsapp_rust::wacore::store::traits::DeviceStore;
    Ok(backend
        .load()
        .await
        .map_err(|e| anyhow::anyhow!("reading the WhatsApp session: {e}"))?
        .and_then(|d| {
            d.pn.clone().map(|pn| Me {
                pn: Some(pn),
                lid: d.lid.clone(),
            })
        }))
}

/// How `hearth pair` runs.
/// The session and its account, when `hearth pair` has linked one (an
/// existing session file that does not open is an error).
async fn open_linked(paths: &BridgePaths) -> anyhow::Result<Option<(Arc<SessionDb>, Me)>> {
    if !SessionDb::file(&paths.state_dir).exists() {
        return Ok(None);
    }
    let db = open_session(paths, Create::Never)?;
    let backend = SessionBackend::new(db.clone());
    Ok(linked_account(&backend).await?.map(|me| (db, me)))
}

/// The number this box is linked to, if any, read from the session
/// without reaching WhatsApp.
pub async fn linked_number(paths: &BridgePaths) -> anyhow::Result<Option<String>> {
    let me = open_linked(paths).await?.map(|(_, me)| me);
    Ok(me.map(|m| m.pn.map(|j| format!("+{}", j.user)).unwrap_or_default()))
}

pub struct PairOptions {
    pub paths: BridgePaths,
    /// Link with a pairing code for this number instead of a QR code.
    pub phone: Option<String>,
    /// Draw the QR code for a light-background terminal.
    pub invert: bool,
}

/// Links this box; returns the linked number.
pub async fn pair(opts: PairOptions, shutdown: CancellationToken) -> anyhow::Result<String> {
    let phone = opts
        .phone
        .as_deref()
        .map(link::pairing_number)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    check_reachable().await?;
    let db = open_session(&opts.paths, Create::IfMissing)?;
    let backend = SessionBackend::new(db.clone());
    if let Some(me) = linked_account(&backend).await? {
        anyhow::bail!(
            "this box is already linked to {}; run `hearth unpair` first to link another account",
            me.pn.map(|j| format!("+{}", j.user)).unwrap_or_default()
        );
    }
    let (tx, mut events) = mpsc::unbounded_channel::<LinkEvent>();
    let mut builder = Bot::builder()
        .with_backend(backend)
        .skip_history_sync()
        .with_push_name("Hearth")
        .on_event(move |e: Arc<Event>, _client| {
            let tx = tx.clone();
            async move {
                if let Some(le) = LinkEvent::from_event(&e) {
                    let _ = tx.send(le);
                }
            }
        });
    if let Some(number) = &phone {
        builder = builder.with_pair_code(whatsapp_rust::pair_code::PairCodeOptions {
            phone_number: number.clone(),
            ..Default::default()
        });
    }
    let bot = builder
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("starting the WhatsApp client: {e}"))?;
    let client = bot.client();
    let handle = bot.spawn();
    let mut linking = Linking::new(phone.is_some());
    let mut shown_code = false;
    let started = tokio::time::Instant::now();
    let outcome = loop {
        let wait = if shown_code {
            LINK_TIMEOUT.saturating_sub(started.elapsed())
        } else {
            FIRST_CODE_TIMEOUT.saturating_sub(started.elapsed())
        };
        let event = tokio::select! {
            _ = shutdown.cancelled() => break Err(anyhow::anyhow!("linking cancelled")),
            e = tokio::time::timeout(wait, events.recv()) => e,
        };
        let event = match event {
            Err(_) if !shown_code => {
                break Err(anyhow::anyhow!(link::unreachable_message(
                    "no linking code arrived within 30 s"
                )));
            }
            Err(_) => {
                break Err(anyhow::anyhow!(
                    "linking timed out; run `hearth pair` again"
                ));
            }
            Ok(None) => break Err(anyhow::anyhow!("the WhatsApp client stopped")),
            Ok(Some(e)) => e,
        };
        match linking.on(event) {
            Step::Continue(shows) => {
                let mut failed = None;
                for show in shows {
                    shown_code |= matches!(show, Show::Qr { .. } | Show::PairCode { .. });
                    if let Err(e) = present(&show, &client, opts.invert).await {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    break Err(e);
                }
            }
            Step::Linked { number } => break Ok(number),
            Step::Failed(why) => break Err(anyhow::anyhow!(why)),
        }
    };
    handle.shutdown().await;
    match &outcome {
        // A half-made device must not look linked next time.
        Err(_) => {
            let _ = db.forget_session();
        }
        // For Hearth's audit log, delivered by the bridge.
        Ok(number) => db.queue_audit(crate::proto::BridgeAction::Paired.as_str(), number)?,
    }
    outcome
}

/// Shows one linking step in the terminal (and runs the passkey hand-off).
async fn present(show: &Show, client: &Arc<Client>, invert: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match show {
        Show::Qr { payload, valid_for } => {
            let qr = link::render_qr(payload, invert).map_err(|e| anyhow::anyhow!(e))?;
            // Clear the screen so a rotated code replaces the last one.
            write!(out, "\x1b[2J\x1b[H")?;
            writeln!(
                out,
                "Scan with WhatsApp on the phone of the account Hearth will use:\n\
                 Settings > Linked devices > Link a device (valid {} s, renewed automatically).\n\
                 Cannot scan? Ctrl-C, then `hearth pair --phone +NUMBER` for a code to type.\n",
                valid_for.as_secs()
            )?;
            writeln!(out, "{qr}")?;
        }
        Show::PairCode { code, valid_for } => {
            writeln!(
                out,
                "\nOn the phone: WhatsApp > Settings > Linked devices > Link a device >\n\
                 \"Link with phone number instead\", then type this code (valid {} s):\n\n    {}\n",
                valid_for.as_secs(),
                link::format_pair_code(code)
            )?;
        }
        Show::Info(text) => writeln!(out, "{text}")?,
        Show::Passkey { options_json } => {
            writeln!(
                out,
                "\nWhatsApp asks for your passkey to link this box. Hearth cannot use it itself;\n\
                 your browser can. On a computer:\n\
                 1. open https://web.whatsapp.com in Chrome, Edge, Firefox or Safari (no need to log in),\n\
                 2. open the developer console (F12, tab \"Console\") and paste this one line:\n\n{}\n\n\
                 3. choose your phone or password manager when the browser asks, confirm with your\n\
                    fingerprint or screen lock, and copy the one line of JSON the console prints.\n\
                 Paste it here and press Enter (within 5 minutes):",
                link::passkey_console_snippet(options_json)
            )?;
            drop(out);
            let line = read_line().await?;
            let assertion = link::parse_assertion(&line).map_err(|e| anyhow::anyhow!(e))?;
            client
                .send_passkey_response(assertion)
                .await
                .map_err(|e| anyhow::anyhow!("sending the passkey response: {e}"))?;
        }
        Show::ConfirmCode(code) => {
            writeln!(
                out,
                "Does your phone show the code {code}? Type yes and press Enter to finish linking:"
            )?;
            drop(out);
            let line = read_line().await?;
            if !line.trim().eq_ignore_ascii_case("yes") {
                anyhow::bail!("linking stopped: the codes did not match");
            }
            client
                .send_passkey_confirmation()
                .await
                .map_err(|e| anyhow::anyhow!("confirming the link: {e}"))?;
        }
    }
    Ok(())
}

/// One line typed by the owner, read off the async threads.
async fn read_line() -> anyhow::Result<String> {
    Ok(tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map(|_| s)
    })
    .await??)
}

/// What `hearth unpair` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unpaired {
    /// Logged out at WhatsApp and wiped here.
    LoggedOut(String),
    /// Wiped here; WhatsApp could not be told (remove the device on the
    /// phone too).
    WipedOffline(String),
    NotLinked,
}

/// Logs this box out of WhatsApp (when reachable) and wipes the session.
pub async fn unpair(paths: &BridgePaths) -> anyhow::Result<Unpaired> {
    if !SessionDb::file(&paths.state_dir).exists() {
        return Ok(Unpaired::NotLinked);
    }
    let db = open_session(paths, Create::Never)?;
    let backend = SessionBackend::new(db.clone());
    let Some(me) = linked_account(&backend).await? else {
        db.forget_session()?;
        return Ok(Unpaired::NotLinked);
    };
    let number = me
        .pn
        .as_ref()
        .map(|j| format!("+{}", j.user))
        .unwrap_or_default();
    let told = match check_reachable().await {
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell WhatsApp about the unlink");
            false
        }
        Ok(()) => {
            let bot = Bot::builder()
                .with_backend(backend)
                .skip_history_sync()
                .build()
                .await
                .map_err(|e| anyhow::anyhow!("starting the WhatsApp client: {e}"))?;
            let client = bot.client();
            let handle = bot.spawn();
            let ok = client
                .wait_for_connected(Duration::from_secs(20))
                .await
                .is_ok();
            if ok {
                client.logout().await;
            }
            handle.shutdown().await;
            ok
        }
    };
    db.forget_session()?;
    db.queue_audit(
        crate::proto::BridgeAction::Unpaired.as_str(),
        &format!(
            "{number} ({})",
            if told { "logged out" } else { "wiped offline" }
        ),
    )?;
    Ok(if told {
        Unpaired::LoggedOut(number)
    } else {
        Unpaired::WipedOffline(number)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_host_fails_within_seconds_with_advice() {
        // A port nothing listens on: refused at once.
        let started = std::time::Instant::now();
        let err = check_reachable_at("127.0.0.1:9")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(11),
            "{:?}",
            started.elapsed()
        );
        assert!(err.contains("cannot reach WhatsApp"), "{err}");
        assert!(err.contains("port 443"), "{err}");
    }
}
