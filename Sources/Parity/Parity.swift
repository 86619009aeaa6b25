// The Parity module (being written).
