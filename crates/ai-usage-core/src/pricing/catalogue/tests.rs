//! Tests of resolution over the embedded snapshot.
