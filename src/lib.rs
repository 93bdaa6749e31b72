//! Hearth: a fully offline assistant for a home box.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map. In short:
//! [`llm`] runs GGUF models in-process on candle, [`catalog`] knows which
//! model files exist and puts them in place, and [`cli`] is the `hearth`
//! command line on top of both.
//!
//! Without the default `app` feature only the engine builds: [`llm`],
//! [`embed`], [`voice`], [`board`], [`clock`] and [`process`], which need none of the store,
//! document, server, transport or command-line dependencies.

#[cfg(feature = "app")]
pub mod actions;
#[cfg(feature = "app")]
pub mod audit;
#[cfg(feature = "app")]
pub mod bench;
pub mod board;
#[cfg(feature = "app")]
pub mod bridge;
#[cfg(feature = "app")]
pub mod catalog;
#[cfg(feature = "app")]
pub mod cli;
pub mod clock;
#[cfg(feature = "app")]
pub mod command;
#[cfg(feature = "app")]
pub mod config;
#[cfg(feature = "app")]
pub mod doctor;
pub mod embed;
#[cfg(feature = "app")]
pub mod firstboot;
#[cfg(feature = "app")]
pub mod hex;
#[cfg(feature = "app")]
pub mod index;
#[cfg(feature = "app")]
pub mod key;
pub mod llm;
#[cfg(feature = "app")]
pub mod paths;
#[cfg(feature = "app")]
pub mod policy;
#[cfg(feature = "app")]
pub mod privacy;
pub mod process;
#[cfg(feature = "app")]
pub mod proto;
#[cfg(feature = "app")]
pub mod reminder;
#[cfg(feature = "app")]
pub mod search;
#[cfg(feature = "app")]
pub mod serve;
#[cfg(feature = "app")]
pub mod sources;
#[cfg(feature = "app")]
pub mod store;
#[cfg(feature = "app")]
pub mod timesync;
pub mod voice;
