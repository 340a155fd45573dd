//! The engine's behaviours, against the in-memory store (and SQLite for a few).

mod audit;
mod commands;
mod common;
mod hot;
mod integrity;
mod projections;
mod referrals;
mod replicas;
mod scheduled;
mod sqlite;
