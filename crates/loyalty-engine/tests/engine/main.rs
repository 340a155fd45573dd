//! The engine's behaviours, against the in-memory store (and SQLite for a few).

mod analytics;
mod audit;
mod commands;
mod common;
mod expiry_notices;
mod golden;
mod hot;
mod import;
mod integrity;
mod liability;
mod privacy;
mod program_history;
mod projections;
mod quote;
mod referrals;
mod replicas;
mod scheduled;
mod schema_versions;
mod sqlite;
mod what_if;
