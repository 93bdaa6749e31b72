//! Hearth: a fully offline assistant for a home box.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map. In short:
//! [`llm`] runs GGUF models in-process on candle, [`catalog`] knows which
//! model files exist and puts them in place, and [`cli`] is the `hearth`
//! command line on top of both.

pub mod audit;
pub mod bridge;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod doctor;
pub mod embed;
pub mod hex;
pub mod index;
pub mod key;
pub mod llm;
pub mod paths;
pub mod policy;
pub mod privacy;
pub mod process;
pub mod proto;
pub mod reminder;
pub mod search;
pub mod serve;
pub mod sources;
pub mod store;
