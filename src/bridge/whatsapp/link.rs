//! Linking this box as a WhatsApp companion device (`hearth pair`), as pure
//! code: the state machine that turns whatsapp-rust's pairing events into
//! what the owner sees and when linking is done or has failed, the QR code
//! drawn with Unicode half blocks, the phone-number check for pairing
//! codes, and the passkey step's hand-off (the browser snippet the owner
//! runs, and the assertion JSON pasted back).
//!
//! No I/O here: the runtime in `super` feeds events in and prints what
//! comes out.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use whatsapp_rust::types::events::Event;

/// A pairing event, reduced to what linking needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    Qr { code: String, valid_for: Duration },
    QrExhausted,
    PairCode { code: String, valid_for: Duration },
    PairCodeError(String),
    PasskeyRequest { options_json: String },
    PasskeyConfirmation { code: String, skip_check: bool },
    PasskeyError(String),
    Success { number: String, platform: String },
    PairError(String),
    LoggedOut(String),
    ClientOutdated,
    TemporaryBan(String),
    Connected,
    Disconnected,
    ConnectFailure(String),
}

impl LinkEvent {
    /// The linking-relevant part of a transport event (`None`: not ours).
    pub fn from_event(e: &Event) -> Option<Self> {
        Some(match e {
            Event::PairingQrCode(q) => Self::Qr {
                code: q.code.clone(),
                valid_for: q.timeout,
            },
            Event::PairingQrCodesExhausted(_) => Self::QrExhausted,
            Event::PairingCode(c) => Self::PairCode {
                code: c.code.clone(),
                valid_for: c.timeout,
            },
            Event::PairingCodeError(_) => Self::PairCodeError(
                "WhatsApp refused the pairing-code request (check the number, or wait a few minutes)"
                    .into(),
            ),
            Event::PairPasskeyRequest(r) => Self::PasskeyRequest {
                options_json: r.request_options_json.clone(),
            },
            Event::PairPasskeyConfirmation(c) => Self::PasskeyConfirmation {
                code: c.code.clone(),
                skip_check: c.skip_handoff_ux,
            },
            Event::PairPasskeyError(p) => Self::PasskeyError(p.error.clone()),
            Event::PairSuccess(s) => Self::Success {
                number: format!("+{}", s.id.user),
                platform: s.platform.clone(),
            },
            Event::PairError(p) => Self::PairError(p.error.clone()),
            Event::LoggedOut(l) => Self::LoggedOut(format!("{:?}", l.reason)),
            Event::ClientOutdated(_) => Self::ClientOutdated,
            Event::TemporaryBan(b) => Self::TemporaryBan(format!(
                "{:?} for {} min",
                b.code,
                b.expire.num_minutes()
            )),
            Event::Connected(_) => Self::Connected,
            Event::Disconnected(_) => Self::Disconnected,
            Event::ConnectFailure(f) => Self::ConnectFailure(format!("{:?}", f.reason)),
            _ => return None,
        })
    }
}

/// What the owner is shown next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Show {
    /// A QR payload to draw (replacing the previous one).
    Qr {
        payload: String,
        valid_for: Duration,
    },
    /// The 8-character code to type on the phone.
    PairCode {
        code: String,
        valid_for: Duration,
    },
    /// WhatsApp wants a passkey: the owner runs the browser step and pastes
    /// the result back.
    Passkey {
        options_json: String,
    },
    /// Ask the owner to confirm the phone shows this code.
    ConfirmCode(String),
    Info(String),
}

/// Where linking stands after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Continue(Vec<Show>),
    Linked { number: String },
    Failed(String),
}

/// Disconnects tolerated before any QR or code appeared: after this many,
/// WhatsApp is considered unreachable.
const MAX_EARLY_DISCONNECTS: u32 = 3;

/// The linking state machine.
#[derive(Debug, Default)]
pub struct Linking {
    by_phone: bool,
    shown_any: bool,
    early_disconnects: u32,
    paired: Option<String>,
}

impl Linking {
    pub fn new(by_phone: bool) -> Self {
        Self {
            by_phone,
            ..Self::default()
        }
    }

    pub fn on(&mut self, event: LinkEvent) -> Step {
        use LinkEvent as E;
        match event {
            E::Qr { code, valid_for } => {
                self.shown_any = true;
                if self.by_phone {
                    // The code flow runs beside the QR flow; keep the
                    // screen for the code.
                    return Step::Continue(Vec::new());
                }
                Step::Continue(vec![Show::Qr {
                    payload: code,
                    valid_for,
                }])
            }
            E::QrExhausted => Step::Failed(
                "no QR code was scanned in time; run `hearth pair` again when your phone is at hand"
                    .into(),
            ),
            E::PairCode { code, valid_for } => {
                self.shown_any = true;
                Step::Continue(vec![Show::PairCode { code, valid_for }])
            }
            E::PairCodeError(why) => Step::Failed(why),
            E::PasskeyRequest { options_json } => {
                Step::Continue(vec![Show::Passkey { options_json }])
            }
            E::PasskeyConfirmation { code, skip_check } => Step::Continue(if skip_check {
                vec![Show::Info("Passkey accepted; finishing the link…".into())]
            } else {
                vec![Show::ConfirmCode(code)]
            }),
            E::PasskeyError(why) => Step::Failed(format!(
                "the passkey step failed: {why}. Run `hearth pair` again; see README \"Connect WhatsApp\" for the passkey case"
            )),
            E::Success { number, platform } => {
                self.paired = Some(number.clone());
                Step::Continue(vec![Show::Info(format!(
                    "Phone accepted the link ({number}, {platform}); waiting for WhatsApp to confirm…"
                ))])
            }
            E::Connected => match self.paired.take() {
                Some(number) => Step::Linked { number },
                None => Step::Continue(Vec::new()),
            },
            E::PairError(why) => Step::Failed(format!(
                "the phone could not link this box: {why}. Try again; if it keeps failing, use `hearth pair --phone +NUMBER`"
            )),
            E::LoggedOut(why) => Step::Failed(format!(
                "WhatsApp ended the session while linking ({why}); run `hearth pair` again"
            )),
            E::ClientOutdated => Step::Failed(
                "WhatsApp refuses this client version; update Hearth and try again".into(),
            ),
            E::TemporaryBan(why) => Step::Failed(format!(
                "WhatsApp has temporarily banned this account ({why}); wait for it to end"
            )),
            E::Disconnected | E::ConnectFailure(_) if self.shown_any || self.paired.is_some() => {
                // After a successful scan WhatsApp drops the stream once
                // (515) and the client reconnects; earlier codes stay valid.
                Step::Continue(Vec::new())
            }
            E::Disconnected | E::ConnectFailure(_) => {
                self.early_disconnects += 1;
                if self.early_disconnects >= MAX_EARLY_DISCONNECTS {
                    Step::Failed(unreachable_message("the connection kept dropping"))
                } else {
                    Step::Continue(Vec::new())
                }
            }
        }
    }
}

/// The error shown when WhatsApp cannot be reached.
pub fn unreachable_message(why: &str) -> String {
    format!(
        "cannot reach WhatsApp ({why}). `hearth pair` needs internet access from this box \
         (web.whatsapp.com, port 443): check the network cable or Wi-Fi, DNS, and any firewall, \
         then run it again"
    )
}

/// A phone number as WhatsApp wants it for pairing codes: digits only,
/// with country code, no leading zeros or `+`.
pub fn pairing_number(input: &str) -> Result<String, String> {
    let trimmed = input.trim();
    let digits: String = trimmed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = digits
        .strip_prefix('+')
        .or_else(|| digits.strip_prefix("00"))
        .unwrap_or(&digits)
        .to_string();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{trimmed:?} is not a phone number; write it with the country code, e.g. +44 7700 900123"
        ));
    }
    if digits.starts_with('0') {
        return Err(format!(
            "{trimmed:?} has no country code; write it as +<country code><number>, e.g. +49 151 …"
        ));
    }
    if !(8..=15).contains(&digits.len()) {
        return Err(format!(
            "{trimmed:?} has {} digits; a number with country code has 8 to 15",
            digits.len()
        ));
    }
    Ok(digits)
}

/// A pairing code as the phone shows its boxes: `ABCD-EFGH`.
pub fn format_pair_code(code: &str) -> String {
    let c: String = code.chars().filter(|c| *c != '-').collect();
    if c.chars().count() == 8 {
        let (a, b) = c.split_at(4);
        format!("{a}-{b}")
    } else {
        c
    }
}

/// `payload` as a QR code drawn with Unicode half blocks, two module rows
/// per text line, with the 4-module quiet zone. Light modules are drawn
/// (`█`), dark ones left blank, which reads correctly on the usual
/// dark-background terminal; `invert` is for light backgrounds.
pub fn render_qr(payload: &str, invert: bool) -> Result<String, String> {
    let code = qrcode::QrCode::new(payload.as_bytes()).map_err(|e| e.to_string())?;
    let width = code.width();
    let colors = code.to_colors();
    let quiet = 4usize;
    let size = width + 2 * quiet;
    // `true` = dark module.
    let dark = |x: usize, y: usize| -> bool {
        if x < quiet || y < quiet || x >= quiet + width || y >= quiet + width {
            return false;
        }
        colors[(y - quiet) * width + (x - quiet)] == qrcode::Color::Dark
    };
    let mut out = String::with_capacity(size * size);
    for y in (0..size).step_by(2) {
        for x in 0..size {
            // Drawn = the terminal's foreground colour.
            let top = dark(x, y) == invert;
            let bottom = y + 1 < size && dark(x, y + 1) == invert;
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// The line the owner pastes into the browser console on
/// https://web.whatsapp.com: it asks the browser (and through it the
/// phone or password manager that holds the WhatsApp passkey) for a WebAuthn
/// assertion over WhatsApp's challenge, and prints the result as one line
/// of JSON to paste back into `hearth pair`.
pub fn passkey_console_snippet(options_json: &str) -> String {
    // The options are JSON already; embedding them as a JS string literal
    // through serde keeps quotes and backslashes intact.
    let literal = serde_json::to_string(options_json).unwrap_or_else(|_| "\"{}\"".into());
    format!(
        "navigator.credentials.get({{publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(JSON.parse({literal}))}}).then(c => console.log(JSON.stringify(c.toJSON())))"
    )
}

/// A WebAuthn assertion pasted back by the owner (the JSON of
/// `PublicKeyCredential.toJSON()`), as whatsapp-rust wants it.
pub fn parse_assertion(json: &str) -> Result<whatsapp_rust::passkey::Assertion, String> {
    let v: serde_json::Value = serde_json::from_str(json.trim())
        .map_err(|e| format!("that is not the JSON the browser printed ({e})"))?;
    let field = |obj: &serde_json::Value, name: &str| -> Result<Vec<u8>, String> {
        let s = obj
            .get(name)
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("the JSON has no {name:?}"))?;
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|e| format!("{name:?} is not base64url ({e})"))
    };
    if v.get("type").and_then(|t| t.as_str()) != Some("public-key") {
        return Err("the JSON is not a public-key credential".into());
    }
    let raw_id = field(&v, "rawId")?;
    let response = v.get("response").ok_or("the JSON has no \"response\"")?;
    let client_data = field(response, "clientDataJSON")?;
    let auth_data = field(response, "authenticatorData")?;
    let signature = field(response, "signature")?;
    let user_handle = match response.get("userHandle") {
        Some(serde_json::Value::String(_)) => Some(field(response, "userHandle")?),
        _ => None,
    };
    Ok(whatsapp_rust::passkey::Assertion {
        assertion_json: whatsapp_rust::passkey::build_webauthn_assertion_json(
            &raw_id,
            &client_data,
            &auth_data,
            &signature,
            user_handle.as_deref(),
        ),
        credential_id: raw_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::types::events as ev;

    const QR: &str = "2@AbCdEfGh123,NoiseKeyBase64=,IdentityKeyBase64=,AdvSecretBase64=";

    /// Reads a rendered QR back into modules and decodes it, as a phone
    /// camera would.
    fn decode_rendered(text: &str, invert: bool) -> String {
        let rows: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let w = rows[0].len();
        let h = rows.len() * 2;
        // Whether the terminal draws (foreground) pixel (x, y).
        let drawn = |x: usize, y: usize| -> bool {
            let c = rows[y / 2][x];
            matches!((c, y % 2), ('█', _) | ('▀', 0) | ('▄', 1))
        };
        let scale = 4;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w * scale, h * scale, |x, y| {
            // What a camera sees: on a dark terminal (not inverted) the
            // drawn blocks are light, on a light one they are dark.
            let dark = drawn(x / scale, y / scale) == invert;
            if dark { 0 } else { 255 }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code found");
        grids[0].decode().expect("decodes").1
    }

    #[test]
    fn the_qr_drawing_scans_back_to_the_payload() {
        for invert in [false, true] {
            let text = render_qr(QR, invert).unwrap();
            assert_eq!(decode_rendered(&text, invert), QR);
        }
        // Two module rows per line, quiet zone on every side.
        let text = render_qr(QR, false).unwrap();
        let code = qrcode::QrCode::new(QR).unwrap();
        assert_eq!(text.lines().count(), (code.width() + 8).div_ceil(2));
        assert!(text.lines().all(|l| l.chars().count() == code.width() + 8));
        assert!(
            text.lines().next().unwrap().chars().all(|c| c == '█'),
            "quiet zone drawn light"
        );
    }

    #[test]
    fn qr_codes_are_shown_and_replaced_until_linked() {
        let mut l = Linking::new(false);
        let qr = |c: &str| LinkEvent::Qr {
            code: c.into(),
            valid_for: Duration::from_secs(20),
        };
        assert!(
            matches!(&l.on(qr("one")), Step::Continue(s) if matches!(&s[..], [Show::Qr { payload, .. }] if payload == "one"))
        );
        assert!(
            matches!(&l.on(qr("two")), Step::Continue(s) if matches!(&s[..], [Show::Qr { payload, .. }] if payload == "two"))
        );
        assert!(matches!(
            l.on(LinkEvent::Success {
                number: "+4915100000001".into(),
                platform: "android".into()
            }),
            Step::Continue(_)
        ));
        // The stream restarts after pairing: not a failure.
        assert_eq!(l.on(LinkEvent::Disconnected), Step::Continue(Vec::new()));
        assert_eq!(
            l.on(LinkEvent::Connected),
            Step::Linked {
                number: "+4915100000001".into()
            }
        );
    }

    #[test]
    fn the_phone_code_path_shows_the_code_not_the_qr() {
        let mut l = Linking::new(true);
        assert_eq!(
            l.on(LinkEvent::Qr {
                code: "q".into(),
                valid_for: Duration::from_secs(20)
            }),
            Step::Continue(Vec::new())
        );
        let step = l.on(LinkEvent::PairCode {
            code: "ABCD1234".into(),
            valid_for: Duration::from_secs(180),
        });
        assert!(
            matches!(&step, Step::Continue(s) if matches!(&s[..], [Show::PairCode { code, .. }] if code == "ABCD1234"))
        );
        assert_eq!(format_pair_code("ABCD1234"), "ABCD-1234");
        assert!(matches!(
            l.on(LinkEvent::PairCodeError("x".into())),
            Step::Failed(_)
        ));
    }

    #[test]
    fn no_network_fails_after_a_few_drops_not_never() {
        let mut l = Linking::new(false);
        assert_eq!(l.on(LinkEvent::Disconnected), Step::Continue(Vec::new()));
        assert_eq!(
            l.on(LinkEvent::ConnectFailure("x".into())),
            Step::Continue(Vec::new())
        );
        assert!(
            matches!(l.on(LinkEvent::Disconnected), Step::Failed(m) if m.contains("cannot reach WhatsApp"))
        );
    }

    #[test]
    fn terminal_states_fail_with_what_to_do() {
        for (e, needle) in [
            (LinkEvent::QrExhausted, "run `hearth pair` again"),
            (LinkEvent::ClientOutdated, "update Hearth"),
            (LinkEvent::TemporaryBan("x".into()), "banned"),
            (LinkEvent::PairError("x".into()), "--phone"),
            (LinkEvent::PasskeyError("x".into()), "passkey"),
        ] {
            assert!(
                matches!(Linking::new(false).on(e), Step::Failed(m) if m.contains(needle)),
                "{needle}"
            );
        }
    }

    #[test]
    fn passkey_requests_and_confirmations() {
        let mut l = Linking::new(false);
        let step = l.on(LinkEvent::PasskeyRequest {
            options_json: "{\"challenge\":\"abc\"}".into(),
        });
        assert!(matches!(&step, Step::Continue(s) if matches!(&s[..], [Show::Passkey { .. }])));
        let step = l.on(LinkEvent::PasskeyConfirmation {
            code: "K7QX2".into(),
            skip_check: false,
        });
        assert_eq!(
            step,
            Step::Continue(vec![Show::ConfirmCode("K7QX2".into())])
        );
        let snippet = passkey_console_snippet("{\"challenge\":\"a\\\"b\"}");
        assert!(snippet.starts_with("navigator.credentials.get("));
        assert!(
            snippet.contains(r#"JSON.parse("{\"challenge\":\"a\\\"b\"}")"#),
            "{snippet}"
        );
    }

    #[test]
    fn a_pasted_assertion_is_decoded() {
        let b = |x: &[u8]| URL_SAFE_NO_PAD.encode(x);
        let json = serde_json::json!({
            "id": b(b"cred"), "rawId": b(b"cred"), "type": "public-key",
            "response": {
                "clientDataJSON": b(b"{\"type\":\"webauthn.get\"}"),
                "authenticatorData": b(b"auth"),
                "signature": b(b"sig"),
                "userHandle": null
            },
            "clientExtensionResults": {}
        })
        .to_string();
        let a = parse_assertion(&json).unwrap();
        assert_eq!(a.credential_id, b"cred");
        let back: serde_json::Value = serde_json::from_slice(&a.assertion_json).unwrap();
        assert_eq!(back["response"]["signature"], b(b"sig"));
        assert!(parse_assertion("not json").is_err());
        assert!(
            parse_assertion("{\"type\":\"public-key\"}")
                .unwrap_err()
                .contains("rawId")
        );
    }

    #[test]
    fn transport_events_map_to_link_events() {
        let qr = Event::PairingQrCode(
            ev::PairingQrCode::builder()
                .code("2@x".into())
                .timeout(Duration::from_secs(60))
                .build(),
        );
        assert_eq!(
            LinkEvent::from_event(&qr),
            Some(LinkEvent::Qr {
                code: "2@x".into(),
                valid_for: Duration::from_secs(60)
            })
        );
        let code = Event::PairingCode(
            ev::PairingCode::builder()
                .code("ABCD1234".into())
                .timeout(Duration::from_secs(180))
                .build(),
        );
        assert!(matches!(
            LinkEvent::from_event(&code),
            Some(LinkEvent::PairCode { .. })
        ));
        let connected = Event::Connected(ev::Connected::builder().build());
        assert_eq!(
            LinkEvent::from_event(&connected),
            Some(LinkEvent::Connected)
        );
        let passkey = Event::PairPasskeyRequest(
            ev::PairPasskeyRequest::builder()
                .request_options_json("{}".into())
                .build(),
        );
        assert!(matches!(
            LinkEvent::from_event(&passkey),
            Some(LinkEvent::PasskeyRequest { .. })
        ));
    }

    #[test]
    fn phone_numbers_for_pairing_codes() {
        assert_eq!(pairing_number("+44 7700 900123").unwrap(), "447700900123");
        assert_eq!(
            pairing_number("0049 (151) 1234-5678").unwrap(),
            "4915112345678"
        );
        assert!(
            pairing_number("07700 900123")
                .unwrap_err()
                .contains("country code")
        );
        assert!(pairing_number("+44 abc").is_err());
        assert!(pairing_number("+1 234").unwrap_err().contains("digits"));
    }
}
