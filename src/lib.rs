//! newswatch: watches a folder of news articles, runs keyword and entity
//! rules on each new one, and delivers alerts to Slack, JSON webhooks and
//! JSON Lines files. See ARCHITECTURE.md for the map.

pub mod alert;
pub mod app;
pub mod article;
pub mod blocking;
pub mod cli;
pub mod commands;
pub mod config;
pub mod ingest;
pub mod pipeline;
pub mod rules;
pub mod ruletest;
pub mod service;
pub mod state;
