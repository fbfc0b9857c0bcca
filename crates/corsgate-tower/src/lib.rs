//! tower layer
