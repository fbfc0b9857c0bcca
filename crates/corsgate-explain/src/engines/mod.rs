//! Each browser engine's verdict and console messages for one exchange.
//!
//! The engines agree on the Fetch standard's outcome in almost every case but
//! word their refusals differently, and they can check in a different order
//! (WebKit blames a preflight's non-2xx status before a missing
//! `Access-Control-Allow-Origin`; Chromium and Firefox the other way round). So
//! every engine module gets the whole exchange — the preflight's response if
//! there was one, the actual response, the request's credentials mode,
//! initiator, URL and origin — and decides itself, with the helpers in
//! [`crate::browser`].

pub(crate) mod chromium;
mod firefox;
mod webkit;

use http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::Verdict;
use crate::browser::{Credentials, Initiator};

/// A browser engine whose verdict explain predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Chromium (Chrome, Edge, Opera, …).
    Chromium,
    /// Firefox (Gecko).
    Firefox,
    /// WebKit (Safari, and every browser on iOS).
    Webkit,
}

impl Engine {
    /// Every engine, in the order explain reports them.
    pub const ALL: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::Webkit];

    /// The name as the command line and the JSON write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chromium => "chromium",
            Self::Firefox => "firefox",
            Self::Webkit => "webkit",
        }
    }

    /// The name as people write it.
    pub fn title(self) -> &'static str {
        match self {
            Self::Chromium => "Chromium",
            Self::Firefox => "Firefox",
            Self::Webkit => "WebKit",
        }
    }

    /// This engine's judgement of `exchange`; `None` when corsgate has no
    /// model of the engine's checks.
    pub(crate) fn judge(self, exchange: &BrowserExchange<'_>) -> Option<Judgement> {
        match self {
            Self::Chromium => Some(chromium::judge(exchange)),
            Self::Firefox => Some(firefox::judge(exchange)),
            Self::Webkit => webkit::judge(exchange),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chromium" => Ok(Self::Chromium),
            "firefox" => Ok(Self::Firefox),
            "webkit" => Ok(Self::Webkit),
            _ => Err(format!(
                "{s:?} is not a browser engine (chromium, firefox or webkit)"
            )),
        }
    }
}

/// One response as the browser receives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Response<'a> {
    /// The status; `None` when the upstream answers and explain cannot know it.
    pub(crate) status: Option<StatusCode>,
    /// The response's headers (the CORS ones are all that matter here).
    pub(crate) headers: &'a HeaderMap,
}

/// A cross-origin request and the answers to it, as the engine sees them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrowserExchange<'a> {
    /// The URL the page fetches.
    pub(crate) url: &'a str,
    /// The page's origin.
    pub(crate) origin: &'a str,
    /// The method, normalised as the browser sends it.
    pub(crate) method: &'a str,
    /// The request headers that are not CORS-safelisted, lowercase and sorted:
    /// those the preflight asks for.
    pub(crate) unsafe_headers: &'a [String],
    /// The headers as the page set them, in its order and spelling (WebKit
    /// names the first refused one as it finds it there).
    pub(crate) page_headers: &'a [(String, String)],
    /// The request's credentials mode.
    pub(crate) credentials: Credentials,
    /// `fetch()` or `XMLHttpRequest`.
    pub(crate) initiator: Initiator,
    /// The preflight's response, when the browser sends a preflight.
    pub(crate) preflight: Option<Response<'a>>,
    /// The actual request's response, if the browser gets that far.
    pub(crate) actual: Response<'a>,
}

/// What an engine does with an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// [`Verdict::Allowed`] or [`Verdict::Blocked`].
    pub(crate) verdict: Verdict,
    /// Whether the preflight is what failed (the actual request is never sent).
    pub(crate) preflight_failed: bool,
    /// The console messages about CORS, in the order the engine prints them.
    pub(crate) console_messages: Vec<String>,
    /// The message of the `TypeError` that `fetch()` rejects with; `None` when
    /// allowed, and for `XMLHttpRequest` (an `error` event, no message).
    pub(crate) js_error: Option<String>,
    /// The engine's structured name for the error, where it has one
    /// (Chromium's `corsError`, as DevTools shows it).
    pub(crate) error_name: Option<String>,
    /// What the prediction assumes, when it assumes something.
    pub(crate) note: Option<String>,
}

impl Judgement {
    pub(crate) fn allowed() -> Self {
        Self {
            verdict: Verdict::Allowed,
            preflight_failed: false,
            console_messages: Vec::new(),
            js_error: None,
            error_name: None,
            note: None,
        }
    }
}

/// One engine's verdict, as explain reports it.
#[derive(Debug, Clone, Serialize)]
pub struct EngineVerdict {
    /// The engine.
    pub engine: Engine,
    /// Its verdict; `None` when corsgate cannot predict it (see `note`).
    pub verdict: Option<Verdict>,
    /// The console messages about CORS the engine prints, in order.
    pub console_messages: Vec<String>,
    /// The message of the `TypeError` `fetch()` rejects with, when blocked.
    pub js_error: Option<String>,
    /// The engine's structured error name, where it has one.
    pub cors_error: Option<String>,
    /// What the prediction rests on, or why there is none.
    pub note: Option<String>,
}

impl EngineVerdict {
    /// The same verdict in every engine, with no messages (same-origin, CORS
    /// off).
    pub(crate) fn plain(engine: Engine, verdict: Verdict) -> Self {
        Self {
            engine,
            verdict: Some(verdict),
            console_messages: Vec::new(),
            js_error: None,
            cors_error: None,
            note: None,
        }
    }

    /// No prediction for this engine.
    pub(crate) fn unknown(engine: Engine) -> Self {
        Self {
            engine,
            verdict: None,
            console_messages: Vec::new(),
            js_error: None,
            cors_error: None,
            note: Some(format!(
                "{}'s prediction is not available: corsgate does not model its CORS checks yet",
                engine.title()
            )),
        }
    }

    pub(crate) fn from_judgement(engine: Engine, judgement: Judgement) -> Self {
        Self {
            engine,
            verdict: Some(judgement.verdict),
            console_messages: judgement.console_messages,
            js_error: judgement.js_error,
            cors_error: judgement.error_name,
            note: judgement.note,
        }
    }
}
