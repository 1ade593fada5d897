pub use kvstore;
